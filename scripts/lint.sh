#!/bin/sh
# Lint, format check and type check, as configured in pyproject.toml ([tool.ruff], [tool.mypy]).
# Run by .ci/run before the tests; all three run, and the script fails if any of them does.
cd "$(dirname "$0")/.." || exit 2
status=0
ruff check . || status=1
ruff format --check --output-format concise . || status=1  # `ruff format --diff` shows the changes
mypy || status=1
exit $status
