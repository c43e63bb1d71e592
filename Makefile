# The two commands of the quick start: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip --disable-pip-version-check

.PHONY: venv demo test test-fast lint lint-imports type security ui bench lock clean browser

venv: $(STAMP)

# torch first (the CPU wheel), then everything under requirements.txt as constraints so the
# resolver can never pull another torch; the project itself is installed editable.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip==26.3
	$(PIP) install -q -c requirements.txt torch==2.13.0
	$(PIP) install -q -c requirements.txt -r requirements.txt
	$(PIP) install -q -c requirements.txt --no-deps -e .
	@touch $@

demo: venv
	$(BIN)/trading demo

# Two workers, whole files per worker (module fixtures stay in one process): about 8 min instead of
# 13 on 2 cores, because the live-Airflow and DAG tests wait on subprocesses much of the time.
# The import contracts first (a second, fast): a broken layer fails before the suite starts.
TEST_WORKERS ?= 2
test: venv lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: venv
	$(BIN)/ruff check trading_core dags plugins tests benchmarks

# Import contracts of pyproject.toml [tool.importlinter] (layers of trading_core, no Airflow in it, no
# cycles); docs/architecture.md draws them. tests/test_architecture.py proves each one catches a violation.
lint-imports: venv
	$(BIN)/lint-imports

type: venv
	$(BIN)/mypy

# Bandit over the shipped code, every finding in readable form (exit 1 on any, Low included); config
# in pyproject.toml [tool.bandit]. `make test` gates on High and Medium/High-confidence findings
# (tests/test_security.py). See docs/security.md.
security: venv
	$(BIN)/python -m bandit -r trading_core dags plugins -c pyproject.toml

# Airflow UI (http://127.0.0.1:8080) and MLflow UI (http://127.0.0.1:5000) on the local stores.
ui: venv
	$(BIN)/trading ui

bench: venv
	$(BIN)/python benchmarks/ingest_sp500.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/incremental_features.py
	$(BIN)/python benchmarks/forecaster.py
	$(BIN)/python benchmarks/env.py

# Chromium for the browser tests (tests/test_production_stack.py; they skip without it): Debian's package,
# as .ci/run installs it. Playwright drives /usr/bin/chromium and never downloads a browser.
browser:
	@test -x /usr/bin/chromium || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; }
	@/usr/bin/chromium --version

# Re-resolve requirements.in into the exact lock requirements.txt (needs the package index).
lock:
	rm -rf /tmp/trading-lock-venv && $(PYTHON) -m venv /tmp/trading-lock-venv
	/tmp/trading-lock-venv/bin/pip install -q pip==26.3
	/tmp/trading-lock-venv/bin/pip install -q torch==2.13.0
	/tmp/trading-lock-venv/bin/pip install -q -r requirements.in
	{ head -2 requirements.txt; echo "torch==2.13.0"; /tmp/trading-lock-venv/bin/pip freeze | grep -v '^torch=='; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	rm -rf $(VENV) .trading
