# The project's commands. Everything runs from a project-local venv (.venv) so a fresh
# machine needs only Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint format demo browser clean up down

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Debian's Chromium, for the tests that look at the audit report as a browser renders it.
browser:
	./scripts/install_chromium.sh

# pytest exits 5 when it selects no tests; make treats any non-zero exit as failure.
# One pytest worker per core (pytest-xdist), a whole test module per worker, because the
# module-scoped stacks (test_stack*.py) must start once: most of the slow tests wait on a
# scheduler or a Bulk job, so the other core runs the rest meanwhile. Modules go out in
# collection order, long ones first (tests/conftest.py), not xdist's biggest-first.
test: lint browser
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder

# A generated day of email activity, synced hour by hour through real Airflow into the
# local Salesforce, then audited. Results and the report land in demo_out/.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# A local Airflow 3 (UI, scheduler, DAG processor, triggerer) with the local Salesforce
# and a day of demo events, in .airflow/. Prints the URL and login. EXECUTOR=local (the
# default): SQLite and the LocalExecutor. EXECUTOR=celery: docker-compose.yaml's deployment
# without Docker (PostgreSQL, Redis, two Celery workers).
EXECUTOR ?= local
up: $(STAMP)
	$(BIN)/python scripts/stack.py up --executor $(EXECUTOR)

# Stops everything `make up` started (PostgreSQL and Redis too); safe to run at any time.
down:
	$(PYTHON) scripts/stack.py down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
