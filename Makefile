# Two commands do all the set-up on a fresh machine:
#   make run    - virtualenv, requirements, migrations, demo data, then HTTP :8080 and gRPC :50051
#   make test   - virtualenv, requirements, then the whole test suite
# Everything else here is a convenience.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format typecheck venv clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/python manage.py serve

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache .mypy_cache

# Load benchmark on a throw-away PostgreSQL database (docs/benchmarks.md); BENCH_ARGS="--seconds 20 --profile".
.PHONY: bench
bench: venv
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
