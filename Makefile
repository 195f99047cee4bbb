# LOTUS: `make run` starts the dashboard on the embedded default; `make test` runs every test.
# Both install what they need first (a venv in .venv; Chromium from Debian for the browser tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# The dashboard answers this machine only. `make run ADDRESS=0.0.0.0` serves it on the network; it then
# reads models, datasets and weights (every file, links resolved) only from the folders in LOTUS_SERVE_ROOTS
# (exported by `run`; default data/).
ADDRESS ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast browser bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip install --quiet -e ".[tracking]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (Playwright cannot download its own browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

# A first `make run` starts the store ($$LOTUS_DB or data/lotus.db) from the shipped demo results, so every page
# and the Report open filled in; an existing store is never touched.
run: install
	$(PY) -c "from lotus_core.views.demo import seed_store; seed_store() and print('results store started from data/demo/lotus-demo.db')"
	$(if $(filter 127.0.0.1 localhost ::1,$(ADDRESS)),,LOTUS_SERVE_ROOTS="$${LOTUS_SERVE_ROOTS:-$(CURDIR)/data}") \
	  $(VENV)/bin/streamlit run app/streamlit_app.py --server.port $(PORT) --server.address $(ADDRESS) \
	  --server.headless true --browser.gatherUsageStats false

test: install browser
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not browser"

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
