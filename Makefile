# `make run` and `make test` are the README's first two commands: they must work on a fresh machine
# with nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstalled when the dependencies or the C code (built in place by pip install -e) change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py domain/_lexemes.c domain/_outline.c | cksum | cut -d' ' -f1)

.PHONY: run test install typecheck clean db-stop

$(STAMP): pyproject.toml setup.py domain/_lexemes.c domain/_outline.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# The repository itself may live outside the home directory (the default allowed root): allow it too.
run: $(STAMP)
	CODESEARCH_ALLOWED_ROOTS="$${CODESEARCH_ALLOWED_ROOTS:-$$HOME:$(CURDIR)}" $(BIN)/codesearch up --index . --watch

test: $(STAMP)
	$(BIN)/mypy --strict domain
	$(BIN)/python -m pytest

typecheck: $(STAMP)
	$(BIN)/mypy --strict domain

db-stop: $(STAMP)
	$(BIN)/codesearch db stop

clean:
	rm -rf $(VENV) build *.egg-info domain/*.so
