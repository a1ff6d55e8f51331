# The two commands: `make run` (set up and serve) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test install system image bench bench-smoke migration clean

run: install system
	SANDBOX_LOG_FORMAT=$${SANDBOX_LOG_FORMAT:-text} $(VENV)/bin/sandbox up $(if $(ROWS),--rows $(ROWS))

test: install system
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Isolation where the machine allows: bubblewrap, the Docker engine and the runner image.
# A machine without them still runs (bubblewrap or nothing); CI demands Docker (SANDBOX_REQUIRE_DOCKER=1).
system:
	-command -v chromium >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y chromium fonts-wqy-microhei
	-bash scripts/start-docker.sh
	-bash scripts/build-image.sh

image:
	bash scripts/build-image.sh

bench: install
	$(PY) -m bench.run
	$(PY) -m bench.latency
	$(PY) -m bench.load

bench-smoke: install
	$(PY) -m bench.run --smoke
	$(PY) -m bench.latency --smoke --out bench/data/LATENCY-smoke.md
	$(PY) -m bench.load --smoke --out bench/data/LOAD-smoke.md

# New Alembic revision from the difference between the models and the migrated schema.
migration: install
	rm -f var/migration-scratch.db
	$(PY) -c "from alembic import command; from sandbox.adapters.store.db import Store; s = Store('sqlite:///var/migration-scratch.db'); s.migrate(); c = s.alembic_config(); conn = s.engine.connect(); c.attributes['connection'] = conn; command.revision(c, message='$(MSG)', autogenerate=True); conn.close()"
	rm -f var/migration-scratch.db

clean:
	rm -rf var build test-artifacts
