#!/usr/bin/env bash
# Installs the Debian packages zbatch needs, only those missing.
# Usage: scripts/install-deps.sh [build|test|bench|fuzz]   (test and bench include the previous
# ones; fuzz is build plus clang and its libFuzzer runtime, for `make fuzz`)
set -euo pipefail

set_name=${1:-build}
build_pkgs=(cmake g++ make pkg-config libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
            libcpp-httplib-dev liblmdb-dev libgtest-dev libgmock-dev libbenchmark-dev
            nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libssl-dev libsystemd-dev)
# tzdata: the time zones of cron schedules (the router reads /usr/share/zoneinfo; UTC needs none).
test_pkgs=(python3 python3-requests python3-yaml python3-jsonschema curl openssl chromium prometheus tzdata
           systemd dpkg-dev fakeroot lintian docker-compose)
bench_pkgs=(redis-server python3-celery python3-redis wrk)
fuzz_pkgs=(clang libclang-rt-14-dev)

pkgs=("${build_pkgs[@]}")
case "$set_name" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  *) echo "install-deps: unknown set '$set_name' (build|test|bench|fuzz)" >&2; exit 2 ;;
esac

# Tests also need Node.js and npm (node --check, the MCP reference servers and the OpenAPI
# validators from npm). A machine that has them already (from its own install) keeps them;
# otherwise Debian's packages.
if [[ "$set_name" != build && "$set_name" != fuzz ]] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
