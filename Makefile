# billtalk: the two commands a newcomer needs are `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup run test lint typecheck bench clean

$(STAMP): pyproject.toml requirements/no-deps.txt requirements/hashed.txt requirements/dlib.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

## Set up .venv (system packages, Python packages, the project itself).
setup: $(STAMP)

## Run the product on its embedded default: SQLite, demo data, trained NLU, the API.
run: setup
	$(BIN)/billtalk run

## Run every test (PostgreSQL tests are skipped with a warning if it is unreachable,
## and fail instead when CI=1).
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var billtalk.db .pytest_cache .mypy_cache .ruff_cache
