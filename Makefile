# snapcap: `make demo` runs the main job offline, `make test` the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.snapcap-installed

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,lm]'
	$(PY) -m snapcap doctor
	touch $(STAMP)

demo: setup
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/snapcap compare --preset tiny -o demo_out

lint: setup
	$(VENV)/bin/ruff check snapcap tests bench
	$(VENV)/bin/ruff format --check snapcap tests bench

test: setup lint
	$(PY) -m pytest -m "slow or not slow" -q

test-fast: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/simulate.py

clean:
	rm -rf demo_out bench_out .pytest_cache
