# Two commands on a fresh machine with Python 3.11+: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint typecheck pytest proto bench bench-quick clean help

help:
	@echo "make up      run the whole stack locally (embedded PostgreSQL and Redis)"
	@echo "make test    lint + types + the whole test suite"
	@echo "make proto   regenerate the gRPC code from ledger/proto/*.proto"
	@echo "make bench-quick / make bench   the benchmark suite (~1 min / < 15 min), a markdown table"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ledger needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

up: $(STAMP)
	$(BIN)/ledger up

lint: $(STAMP)
	$(BIN)/ruff check ledger tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

proto: $(STAMP)
	$(BIN)/python -m ledger.proto.generate

bench-quick: $(STAMP)
	$(BIN)/python bench/suite.py --quick

bench: $(STAMP)
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
