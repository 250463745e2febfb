"""Running the product's commands from the tests: one environment, one runner, one hang guard.

No test compares a wall time with a constant: these machines are shared and their speed drifts
2x from day to day, so speed is measured by ``make bench`` against a baseline run beside it. The
only clock the tests read is a hang guard: a limit far beyond any slow day (the slowest command
of the suite, a calibration in tests/test_calibrate.py, took 248 s on the 2-core CI machine with
a search and three other jobs running beside the suite), so that a hung command fails its test
with a message saying so, instead of stalling CI.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

HANG_GUARD_S = 2700.0
"""Seconds after which a command or a wait is taken to have hung: over 10x the slowest loaded-day figure."""

QUICK = "smoke:epochs=1,train_images=320,test_images=100"
"""The training of tests about what the harness does with trainings (resuming, sharing a study,
kills), not about what a training learns: one epoch on a fifth of smoke's images."""

ONE_AT_A_TIME = ("--concurrency", "1")
"""For a search command whose test is not about concurrent trials: one trial at a time needs one
Ray worker, and each worker costs about 4 CPU-s of imports (torch, Ray Tune, torch._dynamo)."""


SUITE_RAY = "ULSAM_NAS_TEST_RAY_ADDRESS"
"""The environment variable holding the address of the test run's Ray cluster (tests/conftest.py)."""


def child_env(*, own_ray: bool = False, **extra: str) -> dict[str, str]:
    """This process's environment for a command under test, with ``extra``. Its Ray joins the test
    run's cluster (``SUITE_RAY``; starting and stopping a local instance costs a command about 6
    CPU-s) unless ``own_ray``: then it has no RAY_ variable and starts its own local instance, as a
    user's plain command does. A RAY_ADDRESS from the user's shell never reaches a command (it
    would send it to their cluster)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    if not own_ray and SUITE_RAY in os.environ:
        env.update(RAY_ADDRESS=os.environ[SUITE_RAY], RAY_AUTH_MODE="token",
                   RAY_AUTH_TOKEN_PATH=os.environ["RAY_AUTH_TOKEN_PATH"])
    env.update(extra)
    return env


def module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def _hung(what: str, guard_s: float) -> NoReturn:
    pytest.fail(f"hang guard: {what} did not end within {guard_s:.0f} s, 10x or more what a slow day takes; "
                f"it hung", pytrace=False)


def run_module(module: str, *args: Any, env: dict[str, str] | None = None, cwd=None,
               guard_s: float = HANG_GUARD_S) -> subprocess.CompletedProcess:
    """``python -m module args`` to its end, its output captured as text."""
    command = module_command(module, *args)
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd,
                              env=child_env() if env is None else env, timeout=guard_s)
    except subprocess.TimeoutExpired:
        _hung(" ".join(command[1:]), guard_s)


def run_main(module: str, *args: Any) -> subprocess.CompletedProcess:
    """The command ``python -m module args`` as a call of its ``main`` in this process, its output
    captured: for bad input refused before Ray starts, where a new interpreter (seconds of
    imports) would test nothing more. Every command is also run as a real process elsewhere."""
    package = importlib.import_module(module)
    command = importlib.import_module(f"{module}.command") if hasattr(package, "__path__") else package
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = command.main([str(arg) for arg in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(module_command(module, *args), code, out.getvalue(), err.getvalue())


def run_program(command: list[str], *, guard_s: float = HANG_GUARD_S, **kwargs: Any) -> subprocess.CompletedProcess:
    """Any program to its end (``subprocess.run`` keyword arguments pass through), under the hang guard."""
    try:
        return subprocess.run(command, timeout=guard_s, **kwargs)
    except subprocess.TimeoutExpired:
        _hung(" ".join(map(str, command)), guard_s)


def start_module(module: str, *args: Any, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``python -m module args`` started in the background (``subprocess.Popen`` keyword arguments pass through)."""
    return subprocess.Popen(module_command(module, *args), env=child_env() if env is None else env, **popen)


def finish(process: subprocess.Popen, what: str, guard_s: float = HANG_GUARD_S) -> tuple[Any, Any]:
    """The (stdout, stderr) of a background process once it has ended."""
    try:
        return process.communicate(timeout=guard_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        _hung(what, guard_s)


def wait_until(condition: Callable[[], bool], what: str, guard_s: float = HANG_GUARD_S, every_s: float = 0.5) -> None:
    """Polls ``condition`` until it holds; fails the test, saying it hung, after ``guard_s``."""
    deadline = time.monotonic() + guard_s
    while not condition():
        if time.monotonic() > deadline:
            _hung(what, guard_s)
        time.sleep(every_s)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chromium() -> str | None:
    """Headless Chromium's program, when this machine has it (.ci/run installs Debian's chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")


def in_chromium(page: str, profile: Path, *action: str, window: str = "1400,1800",
                budget_ms: int = 20000) -> subprocess.CompletedProcess:
    """Headless Chromium on ``page`` (a URL), its scripts run for ``budget_ms`` of virtual time,
    then ``action``: ``--dump-dom`` (the DOM on stdout) or ``--screenshot=FILE``."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={window}", f"--virtual-time-budget={budget_ms}"]
    return run_program([chromium(), *flags, *action, page], capture_output=True, text=True)


@contextlib.contextmanager
def serving_dashboard(study_dir: Path, log: Path, *args: str) -> Iterator[str]:
    """``python -m ulsam_nas.dashboard --study study_dir`` on a free port until the block ends,
    its output in ``log``; yields the server's base URL once it answers."""
    port = free_port()
    with open(log, "w") as output:
        server = start_module("ulsam_nas.dashboard", "--study", str(study_dir), "--port", str(port), *args,
                              stdout=output, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            urllib.request.urlopen(f"{base}/api/meta", timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until(answers, "the dashboard's first answer", every_s=0.2)
        yield base
    finally:
        server.terminate()
        finish(server, "the dashboard's shutdown")
