# Everything installs into .venv from constraints.txt, so CI and a laptop get the same versions.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint unit demo airflow bench bench-cluster clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check airflow_cognito_iam tests dags benchmarks scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

# Start the offline stack, run the daily example DAG with `airflow dags test`, print where the data went.
demo: install
	$(BIN)/python scripts/demo.py

# The same stack plus `airflow standalone`: open the UI, press Test on the connection, start a backfill.
airflow: install
	$(BIN)/python scripts/airflow_ui.py

# Side-by-side ratios against the devstack (no timed tests anywhere). bench_stream_s3 exits 1 when
# a target is missed; the leading "-" lets the remaining benchmarks still run and print.
bench: install
	$(BIN)/python benchmarks/bench_signing.py
	$(BIN)/python benchmarks/bench_cache.py
	-$(BIN)/python benchmarks/bench_stream_s3.py
	$(BIN)/python benchmarks/upload_memory.py
	$(BIN)/python benchmarks/fanout.py
	$(BIN)/python benchmarks/cold_task.py

# Ratios on a real CeleryExecutor cluster (PostgreSQL, Redis, scheduler, workers, triggerer): minutes each.
bench-cluster: install
	$(BIN)/python benchmarks/backfill_signins.py
	$(BIN)/python benchmarks/deferred_waits.py
	$(BIN)/python benchmarks/fanout.py --celery 50

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
