# One entry point for the README's two commands. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= quick
# Test processes side by side: the tests are mostly one-core work (imports, tracing, small fits), so two of them fill the
# 2-core machine CI runs on (CI on a fresh clone: 34.5 -> about 20 min there); JOBS=1 runs them one at a time.
JOBS ?= 2
# Where UTKFace.tar.gz is: FACE_REPORT_DATA, else data/UTKFace.tar.gz, else the development copy beside the checkout.
export FACE_REPORT_DATA ?= $(firstword $(wildcard data/UTKFace.tar.gz ../shared/data/UTKFace.tar.gz) data/UTKFace.tar.gz)

.PHONY: install system-deps report test test-all clean-nbs readme

$(BIN)/face-report: settings.ini setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: system-deps $(BIN)/face-report

# graphviz draws the architecture figures (a matplotlib diagram is used when it is missing)
system-deps:
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: graphviz not installed; architecture figures fall back to matplotlib"; }

report: install
	$(BIN)/face-report run --profile $(PROFILE)

test: install
	$(BIN)/nbdev_export && git diff --exit-code -- face_report
	$(BIN)/nbdev_test --n_workers $(JOBS)
	$(BIN)/pytest -q -n $(JOBS) --dist worksteal tests

test-all: install
	$(BIN)/nbdev_export && git diff --exit-code -- face_report
	$(BIN)/nbdev_test --n_workers $(JOBS) --flags slow
	$(BIN)/pytest -q -n $(JOBS) --dist worksteal -m "slow or not slow" tests

clean-nbs:
	$(BIN)/nbdev_clean

readme:
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN
