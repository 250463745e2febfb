# `make test` and `make demo` work on a fresh clone: they create .venv when missing and
# (re)install the package whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: test demo bench gpu-check clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

# Three pytest workers on two cores (most tests wait on child processes: commands, Ray, PostgreSQL),
# handed tests one by one, the long ones first (tests/conftest.py), so that no long file holds one
# worker while the others idle.
test: $(INSTALLED)
	$(PY) -m pytest -q -n 3 --dist load --maxschedchunk 1 --durations=15

demo: $(INSTALLED)
	$(PY) -m ulsam_nas.search --space mv2 --budget 200

bench: $(INSTALLED)
	$(PY) benchmarks/ulsam_speed.py
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/early_stopping.py
	$(PY) benchmarks/oneshot_scoring.py
	$(PY) benchmarks/oneshot_vs_standalone.py
	$(PY) benchmarks/driver_scale.py --concurrency 8 --budget 500 --window 250
	$(PY) benchmarks/report_scale.py --small 100 --large 300

# For a machine with a CUDA GPU, which may hold torch but neither Ray nor Optuna: it uses .venv
# when there is one, else $(PYTHON) with the repository on PYTHONPATH; --noconftest because the
# suite's fixtures import Optuna.
GPU_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	PYTHONPATH=. $(GPU_PY) -m pytest -q --noconftest -m gpu tests/test_gpu.py
	PYTHONPATH=. PYTHONUNBUFFERED=1 $(GPU_PY) benchmarks/gpu_training.py

clean:
	rm -rf $(VENV) build *.egg-info
