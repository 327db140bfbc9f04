# results-realtime: every target sets itself up; `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed

.PHONY: install install-js browser test test-py test-js lint bench demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP) ## idempotent .venv with the package and the dev tools

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The demo page: the reference client + supabase-js bundled by esbuild (served by `demo`, no CDN).
JS_BUNDLE := $(JS)/dist/demo-page.js
$(JS_BUNDLE): $(JS_STAMP) $(wildcard $(JS)/src/*.ts $(JS)/page/*) $(JS)/scripts/build.mjs
	cd $(JS) && npm run build --silent

install-js: $(JS_STAMP) $(JS_BUNDLE)

# The browser test drives Debian's Chromium with playwright-core (no browser download).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium at $@ (Debian: apt-get install chromium)"; exit 1; }
	apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

browser: $(CHROMIUM)

test: install install-js browser ## the whole suite: Python (pytest) then JavaScript (vitest)
	$(BIN)/python -m pytest
	cd $(JS) && npm test --silent

test-py: install install-js  # tests/test_packaging.py packs the built demo page
	$(BIN)/python -m pytest

test-js: install install-js browser
	cd $(JS) && npm test --silent

lint: install
	$(BIN)/ruff check daemon tests bench hatch_build.py
	$(BIN)/ruff format --check daemon tests bench hatch_build.py
	$(BIN)/mypy

bench: install install-js
	$(BIN)/python -m bench

demo: install install-js
	$(BIN)/results-realtime demo

clean:
	rm -rf $(VENV) $(JS)/node_modules .pytest_cache .mypy_cache .ruff_cache
