# The two commands of the README: `make repro` and `make test`.
# Both create the environment first when it is missing (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: env repro test lint bench doctor smoke-paper gpu-check

env:
	@bash scripts/bootstrap.sh

repro: env
	@$(VENV)/dvc repro

test: env
	@$(VENV)/ruff check genreid stages tests benchmarks scripts
	@$(VENV)/python -m pytest -q -n auto --dist worksteal tests

lint: env
	@$(VENV)/ruff check genreid stages tests benchmarks scripts

bench: env
	@$(VENV)/python -m pytest -q benchmarks --benchmark-enable --benchmark-only

doctor: env
	@$(VENV)/genreid doctor

# the whole dvc repro at paper shapes on CPU (fake Market archive, random weights, one iteration per
# stage); fails on a crash, a stage over 12 GB peak RSS or a run over 20 minutes (genreid/perf/smoke.py).
# SMOKE_ARGS=--time-advisory reports the time bound as a note (CI runs on CPUs of other speeds).
# RECIPE=uda/dukemtmc_to_market1501.yaml runs a UDA recipe (fake source and target archives).
RECIPE ?= market1501.yaml
smoke-paper: env
	@$(VENV)/python scripts/smoke_paper.py --recipe $(RECIPE) $(SMOKE_ARGS)

# one iteration of each stage at the paper profile on a GPU, into benchmarks/results/gpu_check.{json,md}
gpu-check: env
	@bash scripts/gpu_check.sh --out benchmarks/results
