# Two commands, each installs what it needs on first use into .venv:
#   make check   the main job: the seed example table, then `neuronspec check` on the bundled
#                implementations (conformance report with fingerprints)
#   make test    the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.neuronspec-installed

.PHONY: check test soundness install clean

check: $(STAMP)
	$(BIN)/neuronspec example
	$(BIN)/neuronspec check --markdown check-report.md

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
