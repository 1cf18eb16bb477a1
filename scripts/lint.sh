#!/bin/sh
# Lint, format check and type check, as configured in pyproject.toml ([tool.ruff], [tool.mypy]).
# Run by .ci/run before the tests; all three run, and the script fails if any of them does.
cd "$(dirname "$0")/.." || exit 2
status=0
ruff check . || status=1
ruff format --check . || status=1
mypy || status=1
exit $status
