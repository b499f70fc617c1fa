# Quick start: `make demo` and `make test` on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PEERS := torchattacks==3.5.1 foolbox==3.3.4 eagerpy==0.30.0 adversarial-robustness-toolbox==1.20.1 advertorch==0.2.3

.PHONY: demo test test-fast lint bench clean browser docs

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: the CPU wheel on disk; a bare 'torch' would pull CUDA builds.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps $(PEERS)
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

# the documentation site, warnings as errors (broken links and references fail), into site/
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	@echo "the site: $(CURDIR)/site/index.html"

demo: $(VENV)/.installed
	$(BIN)/brittle demo --out runs/demo

# the report's browser test drives Debian's chromium; without root or apt it skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser tests will be skipped"

# both tiers; `make test-fast` leaves out the slow tier (marked slow: @pytest.mark.slow, or
# measured and listed in tests/slow_tests.txt) and runs in under 2 minutes on 2 cores
test: $(VENV)/.installed-test browser
	BRITTLE_DATA=$${BRITTLE_DATA:-$(CURDIR)/../shared/data} $(BIN)/python -m pytest -n 2 -q

test-fast: $(VENV)/.installed-test browser
	BRITTLE_DATA=$${BRITTLE_DATA:-$(CURDIR)/../shared/data} $(BIN)/python -m pytest -n 2 -q -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache
