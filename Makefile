# Two commands for a fresh machine; each creates .venv when it is missing.
#   make demo   set up, then transcribe the bundled samples with the shipped model
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/speechseq transcribe samples --model saved_models/digits --words

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q
