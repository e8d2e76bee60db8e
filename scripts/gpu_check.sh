#!/usr/bin/env bash
# GPU check: images/s and peak memory of one iteration of each stage at the paper profile
# (amp off/bf16 x channels-last off/on), Jaccard at Market size, PyTorch3D renders/s.
#   scripts/gpu_check.sh --out DIR          on a machine with a GPU (CPU fallback: slow)
#   scripts/gpu_check.sh --dry --out DIR    CPU, tiny shapes (tested in the suite)
# Python: $PYTHON, else .venv/bin/python, else python3. On a bare machine whose python lacks
# packages genreid needs, wheels in .whl/ (see BENCHMARKS.md) are installed into a private folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import pydantic, faiss, ruamel.yaml" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" -m genreid.perf.gpu_check "$@"
