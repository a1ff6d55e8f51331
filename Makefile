# The two commands: `make run` (set up and serve) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test install system image bench bench-smoke clean

run: install system
	$(VENV)/bin/sandbox up $(if $(ROWS),--rows $(ROWS))

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
	-command -v chromium >/dev/null || apt-get install -y chromium fonts-wqy-microhei
	-bash scripts/start-docker.sh
	-bash scripts/build-image.sh

image:
	bash scripts/build-image.sh

bench: install
	$(PY) -m bench.run

bench-smoke: install
	$(PY) -m bench.run --smoke

clean:
	rm -rf var build test-artifacts
