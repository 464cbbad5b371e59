#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and prints its python.
# Reinstalls only when a requirements file changed, so later runs start at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AUDIOSET_BEAM_VENV:-$root/.venv}"
reqs="${1:-requirements.txt}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: Python 3.10+ is needed (found: $("$py" --version 2>&1))" >&2; exit 1
fi
tag="$(basename "$reqs" .txt)"
stamp="$venv/.installed.$tag.$(cat "$root/requirements.txt" "$root/$reqs" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Setting up $venv (first run: a few minutes for TensorFlow and Beam)..." >&2
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  # An environment made before the switch to the `tensorflow` distribution (tfx-bsl needs it) has
  # tensorflow-cpu, whose files overlap: remove it first so the two never shadow each other.
  if "$venv/bin/python" -m pip show -q tensorflow-cpu >/dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall -q -y tensorflow-cpu >&2
  fi
  # (grep drops pip's noise about optional local package indexes on some machines)
  "$venv/bin/python" -m pip install -q -r "$root/$reqs" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
  rm -f "$venv"/.installed."$tag".*
  touch "$stamp"
fi
echo "$venv/bin/python"
