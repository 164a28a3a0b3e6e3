# Two commands, each installs what it needs on first use into .venv:
#   make check   the main job (for now: the seed example table)
#   make test    the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.neuronspec-installed

.PHONY: check test soundness install clean

check: $(STAMP)
	$(BIN)/neuronspec

test: $(STAMP)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

soundness: $(STAMP)
	$(BIN)/neuronspec soundness
	$(BIN)/neuronspec tables

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[torch,test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
