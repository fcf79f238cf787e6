# Two commands for a new user: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: install demo test test-fast lint bench check soak
install: $(VENV)/.installed

demo: install
	$(BIN)/python -m gateway demo

test: install lint
	$(BIN)/python -m pytest -q -ra

test-fast: install
	$(BIN)/python -m pytest -q -ra -m 'not slow'

lint: install
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy --strict gateway

bench: install
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/run.py

check: install
	$(BIN)/python -m gateway check --config config/demo.yaml

# 1,000 signed-in users, tokens expiring every 10 s, one gateway process (~2.5 min; see bench/soak.py).
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
