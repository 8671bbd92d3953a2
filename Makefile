# `make run` runs Trace Insights; `make test` runs the whole suite against real services.

.PHONY: venv run test lint bench-collector bench-api clean

venv:
	@bash scripts/bootstrap-venv.sh

# The whole pipeline in one process on the embedded default (no servers), with demo traffic.
run: venv
	.venv/bin/trace-insights up --demo

test: venv
	@bash scripts/install-deps.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	bash scripts/typecheck.sh
	.venv/bin/pytest -q -p no:cacheprovider

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && bash scripts/typecheck.sh

bench-collector: venv
	@bash scripts/install-deps.sh
	.venv/bin/python bench/collector.py

clean:
	rm -rf .venv .trace-insights

bench-api: venv
	@bash scripts/install-deps.sh
	.venv/bin/python bench/api.py
