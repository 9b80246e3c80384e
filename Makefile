# Fresh machine: `make demo` and `make test` each create .venv, install torch (CPU build from local disk here)
# and robustfast with its extension, then run. Nothing here downloads a CUDA torch on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
SOURCES := $(wildcard setup.py pyproject.toml csrc/*.h csrc/*.cpp csrc/cpu/*.cpp csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.cpp)

.PHONY: install demo test test-all bench torchattacks peers lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) $(SOURCES)
	$(PIP) install -q "$(TORCH)" "setuptools>=69" wheel pybind11 ninja
	$(PIP) install -q --no-build-isolation -e ".[dev]"
	touch $@

install: $(STAMP)

# The outside tools benchmarks and parity tests compare with. torchattacks pins an old requests: no deps.
torchattacks: $(STAMP)
	$(PIP) install -q scipy && $(PIP) install -q --no-deps torchattacks==3.5.1

peers: torchattacks
	$(PIP) install -q adversarial-robustness-toolbox

demo: $(STAMP)
	$(VENV)/bin/robustfast demo

test: torchattacks
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) peers
	$(PY) -m pytest -q

bench: peers
	$(VENV)/bin/robustfast bench pgd --fast

lint: $(STAMP)
	$(VENV)/bin/ruff check robustfast kernels tests benchmarks

clean:
	rm -rf build robustfast/_C*.so robustfast/_build_info.py
