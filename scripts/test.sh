#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, then unit and integration tests.
# Integration fixtures start (or reuse) the real services; pass pytest arguments through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
