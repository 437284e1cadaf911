SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

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

package: setup
	rm -rf dist && mkdir -p dist
	cd job && ../$(PY) -c "import zipfile, pathlib; z = zipfile.ZipFile('../dist/fsmigrate.zip', 'w', zipfile.ZIP_DEFLATED); [z.write(p) for p in sorted(pathlib.Path('fsmigrate').rglob('*.py'))]"
	cp job/migrate.py dist/migrate.py
	@echo "built dist/fsmigrate.zip (--py-files / --extra-py-files) and dist/migrate.py"

bench: setup
	$(PY) scripts/bench_write.py
	$(PY) scripts/bench_migration.py

faults: setup
	$(PY) scripts/fault_matrix.py $(ARGS)
