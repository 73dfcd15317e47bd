#!/usr/bin/env bash
# Runs the dashboard's browser test: installs playwright-core from npm on first use (into the
# build folder), then drives Debian's chromium.  Usage: run.sh <zbatch> <npm folder> [screenshots]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=$2
if [[ ! -d "$npm_dir/node_modules/playwright-core" ]]; then
  mkdir -p "$npm_dir"
  npm install --no-audit --no-fund --prefix "$npm_dir" playwright-core@1.64.1 >/dev/null
fi
if [[ ! -x /usr/bin/chromium ]]; then
  echo "dashboard test: /usr/bin/chromium is missing (scripts/install-deps.sh test installs it)" >&2
  exit 1
fi
[[ -n "${3:-}" ]] && mkdir -p "$3"
# ZBATCH_BROWSER_TEST picks another test of this folder (read_only_test.mjs).
exec node "$here/${ZBATCH_BROWSER_TEST:-dashboard_test.mjs}" "$1" "$npm_dir/node_modules" "${3:-}"
