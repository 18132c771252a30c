#!/usr/bin/env bash
# README command 2: set up .venv, lint, mypy, then run the whole test suite (docs build included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check xstf tests benchmarks examples docs
.venv/bin/ruff format --check xstf tests benchmarks examples docs
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
