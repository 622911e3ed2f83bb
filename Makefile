# The two commands a newcomer needs:
#   make demo   - run the example app on http://127.0.0.1:5000 against the embedded FakeProvider
#   make test   - install everything, lint, type-check, run the whole test suite, build the docs
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install lint typecheck pytest docs browser clean

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck pytest docs

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache
