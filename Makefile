# The two commands a newcomer needs:
#   make demo   - run the example app on http://127.0.0.1:5000 against the embedded FakeProvider
#   make test   - install everything, lint, type-check, run the whole test suite, build the docs
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install lint typecheck pytest docs browser interop-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/flask --app example_app.app run --host 127.0.0.1 --port 5000

browser:
	@bash scripts/ensure-chromium.sh

# oidc-provider (npm) for tests/interop: `npm ci` when node_modules is missing or older than the lock file.
INTEROP := tests/interop/oidc_provider
interop-deps: $(INTEROP)/node_modules/.package-lock.json

$(INTEROP)/node_modules/.package-lock.json: $(INTEROP)/package-lock.json $(INTEROP)/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(INTEROP) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else \
		echo "note: npm is missing; the interop tests will be skipped (under CI=true they fail)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser interop-deps
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck pytest docs

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache

# Benchmarks side by side with Authlib and Flask-Dance (benchmarks/README.md); `make bench BENCH_ARGS=--quick`
# for a run of under 2 minutes. Installs the bench-only dependency group first.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --group bench
	$(BIN)/python -m benchmarks.compare $(BENCH_ARGS)
