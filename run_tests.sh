#!/usr/bin/env bash
# Runs the test suite, installing what it needs first (a virtual environment in .venv, and from Debian's
# packages a Java runtime for the Spark reader test and Chromium for the report test).
#   ./run_tests.sh                 # everything
#   ./run_tests.sh -k ontology     # any pytest arguments
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_system.sh
python="$(scripts/ensure_env.sh requirements-dev.txt)"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Two test processes (whole files each: module fixtures are built once); PYTEST_WORKERS=0 runs serially.
exec "$python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
