# The two newcomer commands (README): `make build` runs the main job, `make test` the tests.
# Each creates .venv and installs what it needs; nothing is expected on the machine beyond
# Python 3.10+, a C++ compiler, CMake and (for the kernel checks) nvcc.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The live Triton test's server: PyTriton (its bundled tritonserver) pins numpy < 2, which the
# main venv cannot take beside Paddle 3, so it gets its own venv (docs/serving.md).
TRITON_VENV := .venv-triton
MODEL  ?= cait_xxs_24
TIMM   := timm==1.0.31

.PHONY: build test test-full format gpu-selftest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# timm goes in with --no-deps: its declared torchvision would pull the CUDA build of torch
# (see tests/support/timm.py).
$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps "$(TIMM)"
	touch $@

$(TRITON_VENV)/.installed: scripts/triton_cpu_server.requirements.txt
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q -r scripts/triton_cpu_server.requirements.txt
	touch $@

build: $(VENV)/.runtime
	$(BIN)/python -m pipeline build --model $(MODEL) --fp16

# ruff first: a lint or format slip fails in a second, before ~5 minutes of tests.
test: $(VENV)/.test $(TRITON_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-full: $(VENV)/.test
	CAIT_FULL=1 $(BIN)/python -m pytest -q -m full

format: $(VENV)/.test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

gpu-selftest:
	bash scripts/gpu_selftest.sh

clean:
	rm -rf build engines .pytest_cache
