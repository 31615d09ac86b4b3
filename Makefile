# baotuan — the two commands are `make run` and `make test`; everything else is here for people who want it.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-faults lint kafka-up kafka-down kafka-jars composecheck bench catalogue venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

kafka-jars: $(STAMP)
	$(BIN)/baotuan kafka fetch

## make composecheck: compose-go (the docker compose loader) in .cache/, for tests/unit/test_deploy_schemas.py (needs Go)
composecheck:
	@if command -v go >/dev/null; then cd deploy/tools/composecheck && go build -o ../../../.cache/composecheck . ; \
	else echo "Go is not installed: the compose files' schema test will be skipped"; fi

## make run: broker, three services, the Binhai demo loaded through the APIs, payouts printed; Ctrl-C stops.
run: venv kafka-jars
	$(BIN)/baotuan run

## make test: the whole suite against a real broker it starts itself (or KAFKA_BOOTSTRAP_SERVERS).
test: venv kafka-jars composecheck
	$(BIN)/python -m pytest

## make test-faults: the fault, load, fuzz, access and Kafka-security tests alone (make test runs them too)
test-faults: venv kafka-jars
	$(BIN)/python -m pytest tests/faults tests/security

test-fast: venv composecheck
	$(BIN)/python -m pytest tests/unit

lint: venv
	$(BIN)/ruff check
	$(BIN)/mypy

kafka-up: venv kafka-jars
	$(BIN)/baotuan kafka up

kafka-down: venv
	$(BIN)/baotuan kafka down

bench: venv kafka-jars
	$(BIN)/python -m bench

catalogue: venv
	$(BIN)/baotuan catalogue --output docs/catalogue

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
