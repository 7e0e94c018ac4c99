# The two set-up commands of the README: `make demo` and `make test`.
# Both bootstrap .venv idempotently (scripts/bootstrap.sh); a second run only checks.
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= out/demo

.PHONY: bootstrap demo test lint format clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(BIN)/geoloc demo --out $(DEMO_OUT)

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest test

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv.lock build install log out
