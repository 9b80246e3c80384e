# Fresh machine: `make demo` and `make test` each create .venv, install torch (CPU build from local disk here)
# and robustfast with its extension, then run. Nothing here downloads a CUDA torch on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
SOURCES := $(wildcard setup.py pyproject.toml csrc/*.h csrc/*.cpp csrc/cpu/*.cpp csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.cpp)

LLM_STAMP := $(VENV)/.llm-installed

.PHONY: install demo test test-all bench torchattacks peers llm lint clean

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

# The llm extra, pinned. deepspeed is an sdist whose setup.py imports torch: --no-build-isolation keeps it on the
# torch installed above (an isolated build would pull a multi-GB CUDA torch); DS_BUILD_OPS=0 compiles no ops.
$(LLM_STAMP): $(STAMP)
	$(PIP) install -q "$(TORCH)" transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 bitsandbytes==0.50.2 \
		accelerate==1.15.0 pyyaml==6.0.3
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation deepspeed==0.19.8
	touch $@

llm: $(LLM_STAMP)

peers: torchattacks
	$(PIP) install -q adversarial-robustness-toolbox faiss-cpu

demo: $(STAMP)
	$(VENV)/bin/robustfast demo

test: torchattacks llm
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) peers llm
	$(PY) -m pytest -q

bench: peers
	$(VENV)/bin/robustfast bench pgd --fast

lint: $(STAMP)
	$(VENV)/bin/ruff check robustfast kernels tests benchmarks

clean:
	rm -rf build robustfast/_C*.so robustfast/_build_info.py
