#!/usr/bin/env bash
# The test suite: install jacrl with its dev extras, then run the default (fast) tests on all
# cores. Slow tests: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/python -m pytest -n auto -q "$@"
