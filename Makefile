# Two commands for a fresh machine; each creates .venv when it is missing.
#   make demo   set up, then run the main job on the FSDD corpus beside the checkout
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
WORK ?= work

.PHONY: demo test

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/speechseq manifest fsdd $(DATA)/fsdd --out $(WORK)/fsdd.jsonl
	$(BIN)/speechseq audit $(WORK)/fsdd.jsonl
	$(BIN)/speechseq features $(WORK)/fsdd.jsonl

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q
