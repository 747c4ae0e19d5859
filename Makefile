# Two commands on a fresh machine with Python 3.11+: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint typecheck pytest proto man bench bench-quick clean help

help:
	@echo "make up      run the whole stack locally (embedded PostgreSQL and Redis)"
	@echo "make test    lint + types + the whole test suite"
	@echo "make proto   regenerate the gRPC code from ledger/proto/*.proto"
	@echo "make man     regenerate man/*.1 and the README's configuration table from the code"
	@echo "make bench-quick / make bench   the benchmark suite (~1 min / < 15 min), a markdown table"

# Two installs: what `ledger up` needs (RUNTIME), then the development tools for `make test`
# (STAMP), so that a first `make up` does not wait for mypy, playwright and schemathesis.
# uv installs in seconds where pip takes a minute or more: the uv on PATH, else uv fetched
# from PyPI into the venv, else (no uv wheel for this platform, no PyPI but a pip mirror) pip.
# --compile-bytecode: pip writes the .pyc files at install, uv only when asked, and without
# them the first `ledger up` compiles every library in each daemon it starts.
RUNTIME := $(VENV)/.runtime-stamp
FIND_UV  = if command -v uv >/dev/null 2>&1; then uv=uv; elif test -x $(BIN)/uv; then uv=$(BIN)/uv; \
	elif $(BIN)/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1; \
	then uv=$(BIN)/uv; else uv=; fi

$(RUNTIME): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ledger needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(FIND_UV); \
	if [ -n "$$uv" ] && echo "installing Ledger with uv…" \
	        && "$$uv" pip install --quiet --compile-bytecode --python $(BIN)/python -e .; \
	then :; \
	else echo "installing Ledger with pip…" \
	    && $(BIN)/python -m pip install --quiet --upgrade pip \
	    && $(BIN)/python -m pip install --quiet -e .; fi
	@touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	@$(FIND_UV); \
	if [ -n "$$uv" ] && echo "installing the development tools with uv…" \
	        && "$$uv" pip install --quiet --python $(BIN)/python -e '.[dev]'; then :; \
	else echo "installing the development tools with pip…" \
	    && $(BIN)/python -m pip install --quiet -e '.[dev]'; fi
	@touch $(STAMP)

up: $(RUNTIME)
	$(BIN)/ledger up

lint: $(STAMP)
	$(BIN)/ruff check ledger tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# -n auto: pytest-xdist, a worker per core (tests/conftest.py caps it at the Redis databases
# the run may use); --dist loadfile keeps each test file on one worker, so a module's shared
# stack (tests/e2e/conftest.py) is started once. tests/contract runs after, in one process:
# schemathesis gives each API operation's test the same node id, and xdist, which tells tests
# apart by node id, would run one operation of the 58 and report the rest as never collected.
pytest: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile --ignore=tests/contract
	$(BIN)/pytest -p no:xdist tests/contract

test: lint typecheck pytest

proto: $(STAMP)
	$(BIN)/python -m ledger.proto.generate

man: $(STAMP)
	$(BIN)/python -m ledger.cli.manpage --write man
	$(BIN)/python -m ledger.cli.manpage --readme README.md

bench-quick: $(STAMP)
	$(BIN)/python bench/suite.py --quick

bench: $(STAMP)
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
