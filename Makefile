# One entry point for humans and CI. `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install demo test lint types schemas pytest bench soak deploy-check dev-up dev-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools prints an "Editable installation" notice (a warning, twice) on every
	@# editable install; it is information only, and noise on a newcomer's first screen.
	@# The faust extra: its engine's tests run in `make test`, and `make bench` runs faust peers.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev,faust]'
	@touch $@

demo: install
	$(BIN)/streams demo

test: install lint types schemas pytest

lint: install
	$(BIN)/ruff format --check streams contracts tests
	$(BIN)/ruff check streams contracts tests

types: install
	$(BIN)/mypy streams contracts

schemas: install
	$(BIN)/streams schemas check

pytest: install
	$(BIN)/python -m pytest

# Our worker and a naive faust peer side by side, per scenario, against the real local
# Kafka and the simulator: rec/s, CPU per record per process, RSS, kill -9 losses, py-spy
# profile. Writes BENCHMARKS.md and bench/results.json (~14 min). BENCH_ARGS=--quick
# (~6 min) or --smoke (~2.5 min, what tests/test_bench_smoke.py runs) write elsewhere.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Not in CI: one worker under a steady 20 rec/s load with a seeded fault mix for 32 min,
# /readyz and /metrics polled; RSS over time, lag, breaker, routes. Writes bench/soak.json
# (~35 min), which BENCHMARKS.md renders as its Soak section. SOAK_ARGS="--minutes 2 --output DIR".
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The deploy files, checked offline by the tools themselves (the pytest suite checks them
# with parsers and the real settings model): Debian's docker-compose, and kubectl kustomize.
deploy-check:
	docker-compose -f docker-compose.yml --profile observability config -q
	kubectl kustomize deploy/k8s/at-least-once >/dev/null
	kubectl kustomize deploy/k8s/exactly-once >/dev/null

dev-up: install
	$(BIN)/streams dev up

dev-down: install
	$(BIN)/streams dev down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
