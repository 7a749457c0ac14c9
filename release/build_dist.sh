#!/usr/bin/env bash
# Wheels and sdists of the core and every plugin (python -m build: the sdist first, then the
# wheel built from it, so an sdist that misses a file fails here). Usage: build_dist.sh [OUT]
# with PYTHON the interpreter that has `build` and setuptools (default .venv/bin/python).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
out=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
rm -f "$out"/icd*.whl "$out"/icd*.tar.gz.tmp
for project in "$root" "$root"/plugins/*/; do
    # --no-isolation: the build backend (setuptools) is the pinned one already installed, so
    # the build needs no network; a missing backend is one clear line from build.
    "$python" -m build --no-isolation --outdir "$out" "$project" >"$out/.build.log" 2>&1 || {
        tail -20 "$out/.build.log" >&2
        echo "build_dist: building ${project#"$root"/} failed (log: $out/.build.log)" >&2
        exit 1
    }
done
rm -f "$out/.build.log"
ls "$out"/*.whl | wc -l | xargs -I{} echo "build_dist: {} wheels in $out"
