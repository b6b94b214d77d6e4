#!/usr/bin/env bash
# Service benchmark: the HTTP API's request rate and upload throughput, each
# printed beside nginx doing the same kind of work on the same machine in the
# same run, so the ratio (not the machine-dependent absolute figure) is what
# one reads.
#
#   requests/s  `wrk --latency` on GET /status/{id} (a real SQLite lookup of
#               one job) vs nginx serving a static file holding the very same
#               JSON bytes; keep-alive; R rounds alternating the order,
#               medians of req/s and of the p50/p99 latencies.
#   upload MB/s a 50 MiB WAV sent N times with curl: multipart POST to
#               /upload-audio/ (streamed to the blob store, fsynced) vs a raw
#               PUT to nginx's dav module (written to its body temp file, then
#               renamed into place); medians of file bytes / curl time_total,
#               MB = 10^6 bytes. Each diarist job is deleted afterwards.
#   peak RSS    diarist serve's VmHWM before and after the uploads: uploads
#               are streamed, so it must not grow by anything like 50 MiB.
#
# Configs (both ends get the same parallelism and both log every request,
# which is each one's default):
#   diarist serve   API_HOST=127.0.0.1, API_PORT=0 (ephemeral),
#                   DIARIST_API_THREADS=$THREADS, DIARIST_MAX_UPLOAD_MB=256,
#                   DIARIST_DATA in the temp dir, request log on stderr -> file.
#   nginx           worker_processes $THREADS, worker_connections 1024,
#                   keepalive_requests 1000000 (libmicrohttpd has no limit),
#                   access_log to a file, sendfile off, dav_methods PUT,
#                   client_max_body_size 256m, all temp paths in the temp dir.
# BENCH_ACCESS_LOG=0 turns both request logs off instead.
#
# Usage: bench/service.sh [REPEATS=3] [UPLOADS=5] [DIARIST_BIN]
# Env:   DIARIST_BIN, THREADS (4), WRK_THREADS (2), WRK_CONNS (32),
#        WRK_SECONDS (10), UPLOAD_MIB (50), BENCH_ACCESS_LOG (1).
# Installs wrk, nginx, curl and python3 when missing (apt-get, as root).
# Traffic goes to 127.0.0.1 only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

repeats=${1:-3}
uploads=${2:-5}
bin=${3:-${DIARIST_BIN:-build/diarist}}
threads=${THREADS:-4}
wrk_threads=${WRK_THREADS:-2}
wrk_conns=${WRK_CONNS:-32}
wrk_seconds=${WRK_SECONDS:-10}
upload_mib=${UPLOAD_MIB:-50}
access_log=${BENCH_ACCESS_LOG:-1}

tmp=""
diarist_pid=""
nginx_pid=""

log() { printf '%s\n' "$*" >&2; }
die() { log "service.sh: $*"; exit 1; }

cleanup() {
  local pid
  for pid in "$diarist_pid" "$nginx_pid"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "$diarist_pid" "$nginx_pid"; do
    [ -n "$pid" ] || continue
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Setup -------------------------------------------------------------------

install_missing() {
  local missing=() cmd pkg
  for cmd in wrk:wrk nginx:nginx curl:curl python3:python3; do
    pkg=${cmd#*:}; cmd=${cmd%%:*}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "needs ${missing[*]} (run as root to install them)"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

build_if_missing() {
  [ -x "$bin" ] && return 0
  [ "$bin" = build/diarist ] || die "no binary at $bin"
  log "building build/diarist"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target diarist >/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# gen_wav PATH DATA_BYTES: a 16 kHz mono 16-bit RIFF/WAVE file, a quiet tone.
gen_wav() {
  python3 - "$1" "$2" <<'EOF'
import math, struct, sys
path, n = sys.argv[1], int(sys.argv[2]) & ~1
period = bytes(b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * i / 40))) for i in range(40)))
chunk = period * (65536 // len(period))
with open(path, "wb") as f:
    f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", n))
    left = n
    while left:
        k = min(left, len(chunk))
        f.write(chunk[:k])
        left -= k
EOF
}

# wait_http URL: up to 10 s for any HTTP answer.
wait_http() {
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

start_diarist() {
  mkdir -p "$tmp/data"
  local level=info
  [ "$access_log" = 1 ] || level=warn
  API_HOST=127.0.0.1 API_PORT=0 DIARIST_API_THREADS=$threads DIARIST_MAX_UPLOAD_MB=256 \
    DIARIST_DATA="$tmp/data" DIARIST_LOG_LEVEL=$level \
    "$bin" serve 2>"$tmp/diarist.log" </dev/null &
  diarist_pid=$!
  local i port=""
  for i in $(seq 1 100); do
    port=$(sed -n 's|.*serving on http://[^:]*:\([0-9]*\)/.*|\1|p' "$tmp/diarist.log" | head -n1)
    [ -n "$port" ] && break
    kill -0 "$diarist_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$tmp/diarist.log" >&2; die "diarist serve did not start"; }
  diarist_url="http://127.0.0.1:$port"
  wait_http "$diarist_url/healthz" || die "diarist does not answer on $diarist_url"
}

start_nginx() {
  local port n="$tmp/nginx" user="" alog="off"
  port=$(free_port)
  mkdir -p "$n/www/up" "$n/body" "$n/proxy" "$n/fastcgi" "$n/uwsgi" "$n/scgi"
  [ "$(id -u)" -eq 0 ] && user="user root;"
  [ "$access_log" = 1 ] && alog="$n/access.log"
  cat >"$n/nginx.conf" <<EOF
$user
daemon off;
worker_processes $threads;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
  default_type application/json;
  access_log $alog;
  sendfile off;
  keepalive_requests 1000000;
  client_body_temp_path $n/body;
  proxy_temp_path $n/proxy;
  fastcgi_temp_path $n/fastcgi;
  uwsgi_temp_path $n/uwsgi;
  scgi_temp_path $n/scgi;
  server {
    listen 127.0.0.1:$port;
    root $n/www;
    location /up/ { dav_methods PUT; client_max_body_size 256m; }
  }
}
EOF
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  "$nginx" -p "$n" -c "$n/nginx.conf" -e "$n/error.log" </dev/null >"$n/stdout.log" 2>&1 &
  nginx_pid=$!
  nginx_url="http://127.0.0.1:$port"
  wait_http "$nginx_url/" || { cat "$n/error.log" "$n/stdout.log" >&2 || true; die "nginx did not start"; }
}

# upload_diarist FILE: prints the job id, or fails.
upload_diarist() {
  local out code body
  out=$(curl -s -H 'Expect:' -w '\n%{http_code}' -F "file=@$1" "$diarist_url/upload-audio/")
  code=${out##*$'\n'}; body=${out%$'\n'*}
  [ "$code" = 200 ] || die "upload answered $code: $body"
  printf '%s\n' "$body" | sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p'
}

delete_job() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$diarist_url/jobs/$1")
  [ "$code" = 200 ] || [ "$code" = 204 ] || die "DELETE /jobs/$1 answered $code"
}

# ---- Measures ----------------------------------------------------------------

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# run_wrk URL SECONDS: prints "req/s p50_ms p99_ms", fails on errors.
run_wrk() {
  local out
  out=$(wrk -t"$wrk_threads" -c"$wrk_conns" -d"$2"s --latency "$1")
  if grep -q 'Non-2xx' <<<"$out"; then printf '%s\n' "$out" >&2; die "non-2xx answers from $1"; fi
  awk '
    function ms(s) { if (s ~ /us$/) return s * 0.001; if (s ~ /ms$/) return s + 0; if (s ~ /s$/) return s * 1000; return s }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors/ { err = $0 }
    END { printf "%.1f %.3f %.3f\n", rps, p50, p99; if (err != "") print "  wrk:" err > "/dev/stderr" }
  ' <<<"$out"
}

# put_nginx FILE: prints MB/s.
put_nginx() {
  local out code t
  out=$(curl -s -o /dev/null -H 'Expect:' -w '%{http_code} %{time_total}' -T "$1" "$nginx_url/up/big.wav")
  code=${out%% *}; t=${out#* }
  [ "$code" = 201 ] || [ "$code" = 204 ] || die "nginx PUT answered $code"
  awk -v b="$big_bytes" -v t="$t" 'BEGIN {printf "%.1f\n", b / 1e6 / t}'
}

# post_diarist FILE: prints MB/s; the job is deleted.
post_diarist() {
  local out code t body id
  out=$(curl -s -H 'Expect:' -w '\n%{http_code} %{time_total}' -F "file=@$1" "$diarist_url/upload-audio/")
  body=${out%$'\n'*}; code=${out##*$'\n'}; t=${code#* }; code=${code%% *}
  [ "$code" = 200 ] || die "upload answered $code: $body"
  id=$(printf '%s\n' "$body" | sed -n 's/.*"job_id": *"\([^"]*\)".*/\1/p')
  [ -n "$id" ] || die "no job_id in $body"
  delete_job "$id"
  awk -v b="$big_bytes" -v t="$t" 'BEGIN {printf "%.1f\n", b / 1e6 / t}'
}

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$diarist_pid/status"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

bench_requests() {
  local i first second d n
  wrk_d=(); wrk_n=()
  log "warm-up: 2 s each"
  run_wrk "$status_url" 2 >/dev/null
  run_wrk "$static_url" 2 >/dev/null
  for i in $(seq 1 "$repeats"); do
    # Alternate which goes first, so a drift in the machine hits both alike.
    if [ $((i % 2)) -eq 1 ]; then first=d; second=n; else first=n; second=d; fi
    for who in $first $second; do
      if [ "$who" = d ]; then
        d=$(run_wrk "$status_url" "$wrk_seconds"); wrk_d+=("$d")
        log "round $i diarist GET /status/{id}: req/s p50_ms p99_ms = $d"
      else
        n=$(run_wrk "$static_url" "$wrk_seconds"); wrk_n+=("$n")
        log "round $i nginx   static file:      req/s p50_ms p99_ms = $n"
      fi
    done
  done
}

bench_uploads() {
  local i who v
  up_d=(); up_n=()
  for i in $(seq 1 "$uploads"); do
    for who in $([ $((i % 2)) -eq 1 ] && echo "d n" || echo "n d"); do
      if [ "$who" = d ]; then
        v=$(post_diarist "$big"); up_d+=("$v")
        log "upload $i diarist POST /upload-audio/: $v MB/s"
      else
        v=$(put_nginx "$big"); up_n+=("$v")
        log "upload $i nginx   PUT (dav):          $v MB/s"
      fi
    done
  done
}

fmt() { awk -v f="$1" '{printf f "\n", $1}'; }

col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '{print $k}' | median; }

report() {
  local rd rn p50d p50n p99d p99n ud un
  rd=$(col 1 "${wrk_d[@]}" | fmt %.0f); rn=$(col 1 "${wrk_n[@]}" | fmt %.0f)
  p50d=$(col 2 "${wrk_d[@]}" | fmt %.3f); p50n=$(col 2 "${wrk_n[@]}" | fmt %.3f)
  p99d=$(col 3 "${wrk_d[@]}" | fmt %.3f); p99n=$(col 3 "${wrk_n[@]}" | fmt %.3f)
  ud=$(printf '%s\n' "${up_d[@]}" | median | fmt %.1f)
  un=$(printf '%s\n' "${up_n[@]}" | median | fmt %.1f)
  echo
  echo "## diarist serve vs nginx, same machine, same run"
  echo
  echo "medians of $repeats wrk rounds (-t$wrk_threads -c$wrk_conns -d${wrk_seconds}s, keep-alive)"
  echo "and of $uploads uploads of a $upload_mib MiB WAV ($big_bytes bytes); MB = 10^6 bytes"
  echo
  echo "| metric | diarist | nginx | ratio diarist/nginx |"
  echo "|---|---:|---:|---:|"
  echo "| GET req/s (/status/{id} vs static file) | $rd | $rn | $(ratio "$rd" "$rn") |"
  echo "| GET latency p50 ms | $p50d | $p50n | $(ratio "$p50d" "$p50n") |"
  echo "| GET latency p99 ms | $p99d | $p99n | $(ratio "$p99d" "$p99n") |"
  echo "| upload MB/s (multipart POST vs PUT) | $ud | $un | $(ratio "$ud" "$un") |"
  echo "| diarist peak RSS MB before / after uploads | $(awk -v k="$hwm_before" 'BEGIN{printf "%.1f", k/1024}') / $(awk -v k="$hwm_after" 'BEGIN{printf "%.1f", k/1024}') | | growth $(awk -v a="$hwm_after" -v b="$hwm_before" 'BEGIN{printf "%.1f", (a-b)/1024}') MB |"
  echo
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(uname -sr)"
  echo "temp dir filesystem: $(df -T "$tmp" | awk 'NR==2 {print $2}')"
  echo "server threads/workers: $threads each; request logs: $([ "$access_log" = 1 ] && echo "on (both, to files)" || echo off)"
  echo "wrk: $(wrk -v 2>&1 | head -n1 | cut -c1-60); nginx: $( (command -v nginx >/dev/null && nginx -v || /usr/sbin/nginx -v) 2>&1 | sed 's/.*version: //')"
  echo "/status answer: $status_bytes bytes"
}

main() {
  case "$repeats$uploads" in *[!0-9]*) die "usage: bench/service.sh [REPEATS] [UPLOADS] [DIARIST_BIN]" ;; esac
  [ "$repeats" -ge 1 ] && [ "$uploads" -ge 1 ] || die "REPEATS and UPLOADS must be at least 1"
  install_missing
  build_if_missing
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/diarist-bench.XXXXXX")
  start_diarist
  log "diarist serve: $diarist_url (pid $diarist_pid, $threads threads)"
  gen_wav "$tmp/small.wav" 32000
  local id
  id=$(upload_diarist "$tmp/small.wav")
  [ -n "$id" ] || die "no job id"
  status_url="$diarist_url/status/$id"
  curl -sf "$status_url" >"$tmp/status.json" || die "GET /status/$id failed"
  status_bytes=$(wc -c <"$tmp/status.json")
  start_nginx
  cp "$tmp/status.json" "$tmp/nginx/www/status.json"
  static_url="$nginx_url/status.json"
  log "nginx: $nginx_url (pid $nginx_pid, $threads workers); static file = the /status answer, $status_bytes bytes"
  bench_requests
  big="$tmp/big.wav"
  gen_wav "$big" $((upload_mib * 1048576))
  big_bytes=$(wc -c <"$big")
  hwm_before=$(hwm_kb)
  bench_uploads
  hwm_after=$(hwm_kb)
  [ "$(wc -c <"$tmp/nginx/www/up/big.wav")" = "$big_bytes" ] || die "nginx stored a file of the wrong size"
  delete_job "$id"
  report
}

main
