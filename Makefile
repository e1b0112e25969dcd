# One place for the README's commands; .ci/run calls the same targets.
PY ?= python3
VENV ?= .venv

.PHONY: setup test lint bench-setup

setup:
	bash scripts/setup.sh $(VENV)

test:
	$(VENV)/bin/python -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench-setup:
	bash scripts/setup_bench.sh
