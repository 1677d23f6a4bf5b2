# Fleetport: `make run` serves the demo at http://127.0.0.1:8000, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install run test check types lint format migrations seed bench clean

help:
	@echo "make run     the portal with demo data on http://127.0.0.1:$${PORT:-8000}"
	@echo "make test    lint, types and the whole suite on a throwaway PostgreSQL and Redis"
	@echo "make check   ruff (lint + format) and mypy"
	@echo "make format  apply ruff's formatting and fixes"

# The venv is rebuilt only when the lock or the project file changes.
$(VENV)/.installed: requirements/lock.txt pyproject.toml bin/bootstrap
	bin/bootstrap
	touch $@

install: $(VENV)/.installed

run: install
	bin/ensure-packages run
	$(BIN)/python bin/run

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory types

# mypy and the migrations check: `make check` without ruff.
types: install
	$(BIN)/mypy .
	@# No database is needed to compare models and migrations; Django's history check warns without one.
	DATABASE_POOL=0 DJANGO_SETTINGS_MODULE=portal.settings.dev $(BIN)/python \
		-W "ignore:Got an error checking a consistent migration history:RuntimeWarning" \
		manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# `make check` with its slow half (mypy and the migrations check: a minute of one core on a clean
# clone) beside the suite, which mostly waits on its servers and Chromium. Its output comes when
# the suite ends; the target fails if either does.
test: install
	bin/ensure-packages test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p var
	@$(MAKE) --no-print-directory types > var/types.log 2>&1 & types=$$!; \
	$(BIN)/python bin/with-services $(BIN)/pytest $(PYTEST_ARGS); tests=$$?; \
	wait $$types; typed=$$?; cat var/types.log; \
	[ $$typed -eq 0 ] || { echo "make types failed (above)" >&2; exit 1; }; \
	exit $$tests

migrations: install
	$(BIN)/python manage.py makemigrations

seed: install
	$(BIN)/python manage.py seed_demo

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
