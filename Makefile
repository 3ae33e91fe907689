# Fresh-machine bootstrap: a local .venv with the CPU build of torch (an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# olah (HF-compatible mirror server for the Hub round-trip tests) pins versions that clash with ours: own venv.
OLAH_VENV := .venv-olah
OLAH_VERSION ?= 0.5.4
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install olah test test-slow lint demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

$(OLAH_VENV)/.installed:
	test -x $(OLAH_VENV)/bin/python || $(PYTHON) -m venv $(OLAH_VENV)
	$(OLAH_VENV)/bin/python -m pip install --quiet "olah==$(OLAH_VERSION)"
	touch $@

olah: $(OLAH_VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint olah
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

demo: install
	$(VENV)/bin/hf-promptseg demo --out demo_output

clean:
	rm -rf $(VENV) $(OLAH_VENV) demo_output
