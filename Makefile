# Two commands set up everything on a fresh machine:
#   make repro   venv + pinned requirements + Fashion-MNIST + `dvc repro`
#   make test    venv + pinned requirements + Fashion-MNIST + the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup data runs repro pull push sweep bench gpu-check test lint

# pip compiles each wheel's bytecode one file at a time; compileall -j 0 does the same files on every
# core (on 2 cores, the install went from 1 min 42 s to 1 min 20 s) and, like pip, keeps the files'
# syntax warnings to itself. torch ships a test helper in Python 3.12 syntax, which pip skips silently:
# it is named here, so any other file that does not compile stops setup (add it here if it is meant so).
PY312_ONLY := '/torch/testing/_internal/py312_intrinsics\.py$$'

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -W ignore::SyntaxWarning -m compileall -q -j 0 -x $(PY312_ONLY) $(VENV)/lib
	touch $@

# Debian ships Fashion-MNIST as a package; elsewhere the download stage fetches it.
data:
	@if [ ! -d $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

# The variants of params.yaml (studies, seeds) into dvc.yaml's train stage, its plots, and each stage's code deps from
# its script's imports (after adding a variant, a seed, or a module a stage imports).
runs: setup
	droplab runs

repro: setup data runs
	droplab repro

# The shared results (docs/pipeline.md, Shared results): every DVC-cached output (data, models) and the
# run cache, from or to the default DVC remote (`dvc remote add -d ...`).
NO_REMOTE = echo "make $@: no default DVC remote; add one first, e.g. dvc remote add -d storage /path/to/dir (docs/pipeline.md: Shared results)" >&2; exit 1
pull: setup
	@dvc remote default >/dev/null 2>&1 || { $(NO_REMOTE); }
	dvc pull --run-cache

push: setup
	@dvc remote default >/dev/null 2>&1 || { $(NO_REMOTE); }
	dvc push --run-cache

# The S2 dropout sweep as DVC experiments (p = 0.1 ... 0.9), then report/sweep/.
sweep: setup data
	droplab sweep --jobs $(or $(JOBS),1)

# Every benchmark in bench/ (about 15 minutes on 2 cores); the table goes to bench/results.md too.
bench: setup
	python -m bench --out bench/results.md

# The GPU path in one short run on one CUDA GPU (a few minutes); the table goes to bench/gpu.md too.
gpu-check: setup
	python -m bench --gpu --out bench/gpu.md

# One pytest-xdist worker more than the machine has cores: the end-to-end runs wait on DVC, git and
# subprocess start-up, and on 2 cores three workers finished the suite in 8 min 42 s where two took
# 9 min 42 s. Tests sharing a clone stay on one worker (tests/test_pipeline.py).
test: setup data
	pytest -n $$(( $$(nproc) + 1 )) --dist loadgroup

lint: setup
	ruff check src stages tests bench
