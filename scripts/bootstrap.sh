#!/usr/bin/env bash
# Create .venv from requirements.lock (exact pins), install genreid into it.
# Idempotent: a stamp holding the lock's hash skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=requirements.lock
stamp=.venv/.genreid-installed
want=$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
echo "bootstrap: installing pinned packages from $LOCK (first time: several GB, some minutes)"
# build tools first: the editable install below builds with the pinned setuptools
.venv/bin/python -m pip install --quiet --disable-pip-version-check $(grep -E "^(pip|setuptools|wheel)==" "$LOCK")
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$LOCK"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "bootstrap: environment ready (.venv)"
