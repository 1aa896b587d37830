# The two commands of the README: `make demo` and `make test`.
#
# `make demo` installs the package and its runtime dependencies only (attrs, cryptography,
# typing-extensions) into .venv-demo/ and runs the walk-through. `make test` installs the
# development tools (the `dev` dependency group) into .venv/ and runs the whole gate. Each
# environment is made on first use and brought up to date when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_VENV ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed
# The demo's environment holds an installed copy of the package: a change to it reinstalls.
SOURCES := $(shell find src -name '*.py' -o -name '*.lua' -o -name 'py.typed')
PIP := -m pip install --quiet --disable-pip-version-check
NEEDS_311 := 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "telecard-auth needs Python 3.11 or newer; run make PYTHON=python3.11")'

.PHONY: demo test lint typecheck pytest docs bench-smoke sdist-check clean

demo: $(DEMO_STAMP)
	@$(DEMO_VENV)/bin/telecard-auth demo

test: lint typecheck pytest docs bench-smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

# The benchmark suite's smoke run: it must run, not meet targets (results/quick.* are not kept).
bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

# What a distribution does with the sdist: unpack it, install it with the `testing` extra and the
# `test` group in an environment of its own, and run its tests there (backend tests skip without
# their servers). Not part of `make test`: it runs the suite a second time.
sdist-check: $(STAMP)
	rm -rf dist/sdist-check && $(BIN)/python -m build --sdist --outdir dist/sdist-check .
	cd dist/sdist-check && tar xzf telecard_auth-*.tar.gz && cd telecard_auth-*/ \
	  && $(PYTHON) -m venv .venv && .venv/bin/python $(PIP) --upgrade pip \
	  && .venv/bin/python $(PIP) '.[testing]' --group test \
	  && env -u CI .venv/bin/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(DEMO_VENV) dist docs/_build .pytest_cache .mypy_cache .ruff_cache .hypothesis

$(BIN)/python:
	@$(PYTHON) -c $(NEEDS_311)
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python $(PIP) --upgrade pip
	$(BIN)/python $(PIP) -e '.[redis,postgres,testing]' --group dev
	@touch $@

# One line says what happens; pip's own output goes to a log, shown only if the install fails.
$(DEMO_STAMP): pyproject.toml $(SOURCES)
	@$(PYTHON) -c $(NEEDS_311)
	@echo "Installing telecard-auth and its runtime dependencies into $(DEMO_VENV)/, then running the demo ..."
	@$(PYTHON) -m venv $(DEMO_VENV)
	@$(DEMO_VENV)/bin/python $(PIP) . > $(DEMO_VENV)/install.log 2>&1 \
	  || { cat $(DEMO_VENV)/install.log; echo "make demo: the install failed (above)"; exit 1; }
	@touch $@
