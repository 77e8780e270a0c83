# Set-up and the two everyday commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KERAS_VENV := .venv-keras

.PHONY: setup demo test lint bench clean keras-env web-deps

setup: $(VENV)/.installed web-deps

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned, so nothing pulls a different build
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -r requirements.txt
	# the suite itself, editable, so `python -m stimuli …` works from any folder
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# jsPsych and the browser plugin's dependencies, from the npm registry (lockfile in the repo)
web-deps:
	@if [ -f package-lock.json ]; then \
	  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then npm ci --no-audit --no-fund; touch node_modules; fi; \
	fi

# TensorFlow/Keras lives in its own environment, used only by the Keras-import tests
keras-env: $(KERAS_VENV)/.installed

$(KERAS_VENV)/.installed: requirements-keras.txt
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/python -m pip install --quiet --upgrade pip
	grep -v '^harmonization==' requirements-keras.txt > $(KERAS_VENV)/requirements-deps.txt
	$(KERAS_VENV)/bin/python -m pip install --quiet -r $(KERAS_VENV)/requirements-deps.txt
	# the authors' harmonization package, without the dependencies it declares (see the file)
	$(KERAS_VENV)/bin/python -m pip install --quiet --no-deps $$(grep '^harmonization==' requirements-keras.txt)
	touch $@

demo: setup
	$(PY) -m analysis pipeline --config configs/demo.toml --overwrite

# ruff for the Python, ESLint (eslint.config.js; package-lock.json pins it) for the pages' code
lint: setup
	$(PY) -m ruff check .
	node_modules/.bin/eslint

test: setup keras-env lint
	$(PY) -m pytest

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf demo_output .pytest_cache .ruff_cache
