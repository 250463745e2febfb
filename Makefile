# `make test` and `make demo` work on a fresh clone: they create .venv when missing and
# (re)install the package whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: test demo bench clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

test: $(INSTALLED)
	$(PY) -m pytest -q --durations=15

demo: $(INSTALLED)
	$(PY) -m ulsam_nas.search --space mv2 --budget 200

bench: $(INSTALLED)
	$(PY) benchmarks/ulsam_speed.py
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/early_stopping.py
	$(PY) benchmarks/oneshot_scoring.py
	$(PY) benchmarks/oneshot_vs_standalone.py

clean:
	rm -rf $(VENV) build *.egg-info
