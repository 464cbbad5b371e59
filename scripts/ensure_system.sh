#!/usr/bin/env bash
# Installs the test suite's system tools from Debian's packages when they are missing: a headless Java
# runtime (Spark reads the output in tests/test_readers.py) and Chromium (tests/test_report.py renders
# report.html). Needs root or sudo; without either it says what to install and the tests that need the
# tool fail with that message.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "warning: cannot install ${need[*]} (not root, no sudo): install them with apt-get" >&2; exit 0; fi
fi
echo "Installing ${need[*]} from Debian's packages..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || echo "warning: apt-get install ${need[*]} failed; the tests that need them will fail" >&2
