# Two commands do all set-up on a fresh Linux machine with Python 3.11:
#   make demo   -> install into .venv and run the whole workflow on the embedded default config
#   make test   -> install into .venv and run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location" || true; }
# One thread per process: parallel jobs on a small machine slow down 2-100x when they oversubscribe.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: install demo test clean-results

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned, so that nothing pulls a different (CUDA) build in behind it.
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet -e ".[dev,sparse,pythia]" $(QUIET_PIP)
	$(BIN)/python -c "import trackpipe, torch, snakemake, pytest" 
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --report results/report.html

test: install
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/* .snakemake
	git checkout results/README.md
