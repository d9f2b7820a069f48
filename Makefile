# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean browser screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kale-yaml needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,examples]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kale-yaml validate examples/wine
	$(BIN)/kale-yaml build examples/wine
	$(BIN)/kale-yaml run examples/wine

lint: $(STAMP)
	$(BIN)/ruff check kale_yaml tests bench examples/make_notebooks.py

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) browser
	$(BIN)/pytest -q

# The browser tests need Chromium: installed with apt-get when it is missing and we may (root, Debian or
# Ubuntu); otherwise those tests are skipped and say why.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } \
			|| echo "could not install chromium: the browser tests will be skipped"; \
	else echo "chromium is missing and cannot be installed here (needs root and apt-get): the browser tests will be skipped"; fi

# docs/images/report.png, the README's screenshot of a run page, as the browser test takes it.
screenshots: $(STAMP) browser
	KALE_YAML_SCREENSHOTS=docs/images $(BIN)/pytest -q tests/test_browser.py -k run_page

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist build
