# The course in two commands:  make lab  |  make test
# Both create .venv (if missing) and install labkit + the course dependencies into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := labkit
NB ?=

.PHONY: lab test test-under-load grade bench clean-notebooks screenshot help

help:
	@echo "make lab        open the course in JupyterLab (127.0.0.1, token login)"
	@echo "make test       run the whole test suite"
	@echo "make test-under-load   the suite with two CPU-bound processes beside it (as on a busy laptop)"
	@echo "make grade NB=notebooks/01_sync.ipynb   grade your own notebook"
	@echo "make bench      print the benchmark figures"

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed: run make PY=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (labkit)" >/dev/null
	@touch $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. $(ROOT_FLAG) notebooks/00_start_here.ipynb

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite must pass on a busy 2-core machine: two CPU burners run beside it. Each burner
# stops by itself after LOAD_S seconds, and is killed when the suite ends, pass or fail.
LOAD_S ?= 1800
test-under-load: $(STAMP)
	@$(BIN)/python scripts/under_load.py --burners 2 --max-s $(LOAD_S) -- $(BIN)/python -m pytest

grade: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make grade NB=notebooks/01_sync.ipynb"; exit 2; }
	$(BIN)/python -m labkit.checks.grade $(NB)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-notebooks: $(STAMP)
	$(BIN)/python scripts/clean_notebooks.py notebooks

screenshot: $(STAMP)
	$(BIN)/python scripts/screenshot_lab.py
