#!/usr/bin/env bash
# README command 1: set up .venv, then run the demo on the built-in synthetic cube.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/xstf demo "$@"
