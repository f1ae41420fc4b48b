# create-llm — the template repository.
#   make demo   set everything up, scaffold a nano project, train it on the built-in corpus,
#               print generated text, instruction-tune it and have it answer a question about a
#               story (the main job, on built-in defaults)
#   make test   set everything up and run the everyday tests (a few minutes on 2 cores)
#   make test-all  every test, with the slow ones (CI runs it as make test, then make test-rest)
#   make bench  speed figures on this machine (training, data preparation, generation)
# Both install into ./.venv; TORCH_SPEC picks the torch build (default: torch).

.DEFAULT_GOAL := help
.PHONY: help venv demo bench test test-rest test-all lint clean

TORCH_SPEC ?= torch
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
DEMO_DIR := build/demo-llm
BENCH_DIR := build/bench-llm
PYTEST_ARGS ?=
# The everyday tier leaves out the tests marked slow, browser or distributed (pyproject.toml says
# why). -n auto spreads the tests over the CPU cores (pytest-xdist), one by one, except that a
# file marked with an xdist_group runs on one worker (its module-scoped fixtures are made once).
FAST_TESTS := -m "not slow and not browser and not distributed"
REST_TESTS := -m "slow or browser or distributed"
WORKERS := -n auto --dist loadgroup

help: ## list the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed ## create .venv with the wrapper and everything the tests need

demo: venv ## scaffold a nano project in build/, train it, generate text, tune it, ask it a question
	rm -rf $(DEMO_DIR)
	CI=1 $(VENV)/bin/create-llm $(notdir $(DEMO_DIR)) --template nano --yes --skip-install --no-git -o $(dir $(DEMO_DIR))
	$(MAKE) -C $(DEMO_DIR) data train generate finetune PYTHON=$(PY)
	$(MAKE) -C $(DEMO_DIR) eval ARGS="--chat --samples 1" PYTHON=$(PY)

bench: venv ## scaffold a project in build/ and print speed figures for the nano and tiny presets
	rm -rf $(BENCH_DIR)
	CI=1 $(VENV)/bin/create-llm $(notdir $(BENCH_DIR)) --template nano --yes --skip-install --no-git -o $(dir $(BENCH_DIR))
	$(MAKE) -C $(BENCH_DIR) bench PYTHON=$(PY) ARGS="--compare"
	$(MAKE) -C $(BENCH_DIR) bench PYTHON=$(PY) ARGS="--preset tiny --compare --skip data"

test: venv ## the everyday tests: wrapper, hooks, bakes, each architecture's `make test`
	$(PY) -m pytest tests $(WORKERS) $(FAST_TESTS) $(PYTEST_ARGS)

test-rest: venv ## the tests make test leaves out (slow, browser, torchrun): CI runs it after make test
	$(PY) -m pytest tests $(WORKERS) $(REST_TESTS) --durations=20 $(PYTEST_ARGS)

test-all: venv ## every test in one run: make test's and make test-rest's
	$(PY) -m pytest tests $(WORKERS) --durations=20 $(PYTEST_ARGS)

lint: venv ## ruff over the wrapper, hooks and tests
	$(PY) -m ruff check wrapper hooks tests

clean: ## remove build outputs (build/, dist/) but not .venv
	rm -rf build dist
