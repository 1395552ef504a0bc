#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, then unit and integration tests.
# Integration fixtures start (or reuse) the real services; pass pytest arguments through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The docker-compose file is validated by `docker compose config`; the plugin is built from Go
# modules (no Docker engine is needed, and none runs on CI). Seconds when already installed.
bash docker/install-compose.sh
exec .venv/bin/python -m pytest "$@"
