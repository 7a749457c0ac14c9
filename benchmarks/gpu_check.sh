#!/usr/bin/env bash
# Offline install on a GPU machine that already has torch/transformers/numpy/scipy/pluggy/…,
# then the GPU check. Wheels the image may lack (cattrs, structlog, …) are taken from
# .gpu-wheels/ (make gpu-wheels), carried next to the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .gpu-wheels ]; then
  python -m pip install --no-index --find-links .gpu-wheels --no-deps .gpu-wheels/*.whl >/dev/null
fi
python -m pip install --no-build-isolation --no-deps -q -e . $(for p in plugins/*/; do printf -- '-e %s ' "$p"; done)
python -m icd_core.cli doctor | tail -n 20
timeout 480 python benchmarks/gpu_check.py "$@"
