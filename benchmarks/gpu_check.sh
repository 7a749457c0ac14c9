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
# the long-context decode at 8,160 cached tokens on CUDA: dense vs paged, natural + Quest vs re-laid
# (layout and budgets decided on the CPU, the decode timed on the GPU); `gpu_check.sh long-context`
# runs it alone (about 5 minutes), `gpu_check.sh models` the model table alone
long_context() { timeout 420 python benchmarks/long_context.py --quick --lengths 8160 --threads 1 --device cuda; }
case "${1:-}" in
  long-context) long_context ;;
  models) shift; timeout 480 python benchmarks/gpu_check.py "$@" ;;
  *) rc=0; timeout 480 python benchmarks/gpu_check.py "$@" || rc=$?; long_context || rc=$?; exit "$rc" ;;
esac
