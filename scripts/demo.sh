#!/usr/bin/env bash
# The main job end to end on local defaults: set-up, services up, demo fleet seeded,
# every pipeline stage, then a summary of what was produced and where.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/monetl demo "$@"
