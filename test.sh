#!/usr/bin/env bash
# Run every check LLM Workbench has: ruff, mypy (strict on app/ and runtimes/), the import-layer
# contract, and pytest (unit, Qt offscreen, integration with real models and real llama.cpp).
#
#   ./test.sh              set up what is missing (no launch), then run everything
#   ./test.sh -k chat      extra arguments go to pytest
set -euo pipefail

cd "$(dirname "$0")"
CI=true ./workbench.sh
BIN=.venv/bin
export QT_QPA_PLATFORM=offscreen

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "ruff"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
step "mypy (strict on app/ and runtimes/)"
"$BIN/mypy"
step "import-layer contract (runtimes <- app <- ui; PySide6 only in ui)"
"$BIN/lint-imports"
step "pytest"
# Exit code 5 (no tests collected) is a failure like any other non-zero code.
"$BIN/python" -m pytest -p no:cacheprovider "$@"
