# The two commands of the README: `make repro` and `make test`.
# Both create the environment first when it is missing (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: env repro test lint bench doctor

env:
	@bash scripts/bootstrap.sh

repro: env
	@$(VENV)/dvc repro

test: env
	@$(VENV)/ruff check genreid stages tests benchmarks scripts
	@$(VENV)/python -m pytest -q tests

lint: env
	@$(VENV)/ruff check genreid stages tests benchmarks scripts

bench: env
	@$(VENV)/python -m pytest -q benchmarks --benchmark-enable --benchmark-only

doctor: env
	@$(VENV)/genreid doctor
