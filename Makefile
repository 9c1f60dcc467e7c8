# capuchin: `make run` runs the main job on the default data, `make test` runs the tests.
# Both create .venv (Python 3.10, see README) and install the pinned stack when it is missing or stale.

PYTHON_VERSION := $(shell cat .python-version)
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt only when the pins or setup.py change.
STAMP := $(VENV)/.installed

.PHONY: venv run test clean

venv: $(STAMP)

$(STAMP): constraints.txt setup.py
	@test -x $(PY) || bash .ci/find-python $(PYTHON_VERSION) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(PY) runners/local_runner.py $(ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
