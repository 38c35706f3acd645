# Two commands do all set-up on a fresh machine:
#   make demo   - build the venv, make a synthetic association, run the workflow -> results/
#   make test   - build the venv and run the test suite
# Debian/Ubuntu mark the system Python as externally managed, so everything
# runs inside a virtual environment that these targets create (.venv).

PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test venv lint clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# Two workers, each taking whole test files (their fixtures are workflow runs shared within a
# file): the suite's joins, start-ups and SLURM polling leave a core idle half the time.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf results
