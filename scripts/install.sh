#!/usr/bin/env bash
# Create .venv (if missing) and install jacrl into it, editable, with torch pinned to the CPU
# build (constraints.txt). Usage: bash scripts/install.sh [EXTRAS], e.g. "dev".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
target="."
if [ -n "${1:-}" ]; then target=".[$1]"; fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e "$target"
