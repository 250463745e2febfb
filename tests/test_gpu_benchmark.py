"""The GPU benchmark's command line on a machine without a GPU: its help, and one line, exit 2."""

import sys
from pathlib import Path

import pytest
import torch

from .commands import child_env, run_program

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_training.py"


def test_the_gpu_benchmark_explains_its_arguments():
    done = run_program([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=child_env())
    assert done.returncode == 0
    assert "--processes" in done.stdout and "--budget" in done.stdout and "--compile-mode" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_the_gpu_benchmark_without_a_gpu_says_so_in_one_line_and_exits_2():
    done = run_program([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=child_env())
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.strip().splitlines() == ["gpu_training: no CUDA GPU here; this benchmark needs one"]
