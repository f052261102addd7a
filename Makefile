# One entry point for set-up, tests, demo, packaging and lint.
# `make test` and `make demo` install everything they need on a fresh Debian 12.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := qgis python3-qgis python3-rasterio python3-venv python3-matplotlib xvfb xauth libgl1-mesa-dri
PLUGIN := s2_taskdriven_sr
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all test test-all demo package lint screenshots weights bench system-deps venv clean help

help:
	@echo "make demo        run the demo on embedded synthetic data (sets everything up)"
	@echo "make test        run the test suite inside a real headless QGIS (sets everything up)"
	@echo "make package     build dist/$(PLUGIN).zip, installable from QGIS"
	@echo "make lint        ruff"
	@echo "make screenshots render the dock and dialogs offscreen into docs/img/"
	@echo "make weights     retrain the shipped starter checkpoints"
	@echo "make bench       speed and memory benchmarks"

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo ">> installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt requirements-dev.txt
	$(MAKE) system-deps
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-all: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "slow or not slow"

demo: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/demo.py --out demo_output

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py

weights: $(STAMP)
	$(PY) -m core.cli weights --out resources/models

bench: $(STAMP)
	$(PY) bench/bench_models.py
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_compare.py

package:
	/usr/bin/python3 scripts/package.py --out dist/$(PLUGIN).zip --name $(PLUGIN)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf dist demo_output .pytest_cache
