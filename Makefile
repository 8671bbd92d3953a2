# `make run` runs Trace Insights; `make test` runs the whole suite against real services.
SERVICES_DIR ?= .trace-insights/services

.PHONY: venv run test lint bench-collector clean

venv:
	@bash scripts/bootstrap-venv.sh

# Until the embedded all-in-one `up` lands, run = a local Kafka broker plus the collector.
run: venv
	@bash scripts/install-deps.sh
	@.venv/bin/python scripts/services.py up --dir $(SERVICES_DIR) --only kafka
	@set -a; . $(SERVICES_DIR)/env; set +a; \
	  trap '.venv/bin/python scripts/services.py down --dir $(SERVICES_DIR)' EXIT; \
	  .venv/bin/trace-insights collector

test: venv
	@bash scripts/install-deps.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pytest -q -p no:cacheprovider

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench-collector: venv
	@bash scripts/install-deps.sh
	.venv/bin/python bench/collector.py

clean:
	rm -rf .venv .trace-insights
