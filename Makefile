# Two commands: `make demo` (install, migrate, demo data, run the server) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install install-dev browser lint bench clean

$(VENV)/.installed: pyproject.toml
	scripts/install-venv "$(PYTHON)" "$(VENV)" ""
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	scripts/install-venv "$(PYTHON)" "$(VENV)" "dev"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## demo: install, migrate, create an admin and demo data, then serve on http://127.0.0.1:8000
demo: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo_setup --base-url http://$(HOST):$(PORT)
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: install what the tests need (packages, headless Chromium) and run the whole suite
test: install-dev browser
	$(PY) -m pytest

browser:
	scripts/ensure-chromium

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var/test_db.sqlite3
