SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON311 ?= python3.11
DIST ?= dist
PACKAGE_BUILD ?= build/package

.PHONY: setup test demo lint package bench faults clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "java not found: install a Java 17 runtime (e.g. apt-get install openjdk-17-jre-headless) and retry"; exit 2; }
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check job scripts tests

demo: setup
	$(PY) scripts/demo.py $(ARGS)

clean:
	rm -rf $(VENV) build dist .demo .runs *.egg-info job/*.egg-info

# No Java, no test tools, no .venv: Python 3.11 and pip (from PyPI: setuptools, venv-pack).
package:
	$(PYTHON311) scripts/package.py --dist $(DIST) --build $(PACKAGE_BUILD)

bench: setup
	$(PY) scripts/bench.py $(ARGS)

faults: setup
	$(PY) scripts/fault_matrix.py $(ARGS)
