#!/usr/bin/env bash
# Set up and run everything on the embedded default, with a demo workspace to play with.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/twofa up --demo "$@"
