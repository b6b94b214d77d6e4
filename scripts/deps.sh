#!/usr/bin/env bash
# Installs the Debian 12 packages diarist builds and tests with. Runs
# apt-get only when something is missing, so repeated runs are quick.
set -euo pipefail
packages=(build-essential cmake pkg-config
          libopenblas-dev libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
          libjansson-dev zlib1g-dev libcmocka-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev libsqlite3-dev
          ffmpeg espeak-ng sox python3 tzdata clang docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js runs the AWS-protocol servers the tests talk to (tests/aws);
# Debian's own package unless a node is already on the PATH.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
# The emulators themselves, pinned by tests/aws/package-lock.json.
aws_dir="$(dirname "$0")/../tests/aws"
if [ ! -d "$aws_dir/node_modules" ] || [ "$aws_dir/package-lock.json" -nt "$aws_dir/node_modules" ]; then
  (cd "$aws_dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null >&2)
fi
