# Two commands for a fresh machine with Python 3.11 and pip: `make train` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv train test bench bench-quick clean-data

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The main job: builds the embedded synthetic data set on first use, then trains the tiny fusion model.
train: venv
	$(PY) train.py model=fusion fold=0

test: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests -n auto --dist loadfile  # a test file stays in one worker (its fixtures, ports)

# Every benchmark -> bench.json and a table (scripts/bench.py); `make bench-quick` in under 2 minutes.
bench: venv
	HF_HUB_OFFLINE=1 $(PY) scripts/bench.py

bench-quick: venv
	HF_HUB_OFFLINE=1 $(PY) scripts/bench.py --quick

clean-data:
	rm -rf datamount/synthetic
