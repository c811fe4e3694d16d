# Two set-up commands: `make demo` (install + run the quickstart study) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test test-slow ci lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[cluster]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[dev,cluster]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	rm -rf runs/quickstart   # the demo's own previous output
	@$(BIN)/arml run studies/quickstart.toml; status=$$?; \
	echo; echo "arml is installed in .venv: put it on your PATH in this shell with"; \
	echo "    source .venv/bin/activate"; \
	echo "(or call .venv/bin/arml), then try: arml list, arml status runs/quickstart"; exit $$status

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m slow

# what CI runs on a fresh clone: the default suite, then the README's commands in order (a slow test)
ci: test
	$(BIN)/python -m pytest -m slow tests/docs/test_readme.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/weighting_overhead.py

clean:
	rm -rf runs mlruns mlflow.db .pytest_cache .ruff_cache
