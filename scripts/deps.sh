#!/usr/bin/env bash
# Installs the Debian 12 packages diarist builds and tests with. Runs
# apt-get only when something is missing, so repeated runs are quick.
set -euo pipefail
packages=(build-essential cmake pkg-config
          libopenblas-dev libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
          libjansson-dev zlib1g-dev libcmocka-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev libsqlite3-dev
          ffmpeg espeak-ng sox python3 tzdata clang)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
