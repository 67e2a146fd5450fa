"""Worker methods under faults: `fsmi run` killed with SIGKILL mid-case takes its worker with it (no process
left on a GPU, no temporary folder left behind), and outputs of another size are recorded like any method's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from baselines.worker_protocol import WorkerMethod
from fsmi_bench.io import load_rgb
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from tests.support.run_fixtures import make_benchmark

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = Path(__file__).with_name("workers")

# A worker method of the user's own, found by `fsmi run --method FILE.py:Class`; its driver comes from config.
METHOD_FILE = '''
from baselines.worker_protocol import WorkerMethod


class TestWorker(WorkerMethod):
    name = "test-worker"
'''


class _Echo(WorkerMethod):
    name = "test-echo"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=1)


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone (a zombie counts as gone: it runs nothing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    state = next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))
    return None if state in ("Z", "X") else state


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) to watch the worker")
def test_sigkill_of_fsmi_run_mid_case_ends_the_worker_and_removes_its_folder(bench, tmp_path):
    (tmp_path / "checkout").mkdir()
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "my_worker.py").write_text(METHOD_FILE)
    config = tmp_path / "worker.json"
    config.write_text(json.dumps({"python": sys.executable, "checkout": str(tmp_path / "checkout"),
                                  "driver": str(WORKERS / "hang_driver.py"), "hang_on": "multi_0001"}))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = [sys.executable, "-m", "fsmi_bench.cli", "run", "--method",
               f"{tmp_path / 'methods' / 'my_worker.py'}:TestWorker", "--bench", str(bench),
               "--out", str(tmp_path / "run"), "--config", str(config), "--no-progress"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(temporary)}
    parent = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        # wait until the worker is stuck inside the driver on multi_0001, the first case in sorted order
        deadline = time.monotonic() + 120
        ready = request = None
        while time.monotonic() < deadline and parent.poll() is None:
            ready = next(temporary.glob("fsmi-test-worker-*/start_1/ready.json"), None)
            request = next(temporary.glob("fsmi-test-worker-*/start_1/request_1.json"), None)
            if ready and request:
                break
            time.sleep(0.02)
        assert ready and request, f"the worker never reached the hanging case: {parent.stderr.read()[-2000:]!r}"
        worker_pid = json.loads(ready.read_text())["pid"]
        time.sleep(0.3)  # inside driver.edit, sleeping
        assert _state(worker_pid) is not None
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_state(worker_pid) is not None or list(temporary.iterdir())):
        time.sleep(0.05)
    survived = _state(worker_pid) is not None
    if survived:
        os.killpg(worker_pid, signal.SIGKILL)  # do not leave it running after a failed test
    assert not survived, "the worker outlived fsmi run"
    assert list(temporary.iterdir()) == [], "the worker's temporary folder was left behind"
    # the killed run resumes: the hanging case fails after its timeout, nothing else is redone
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "running"


def test_worker_outputs_of_another_size_are_recorded_in_size_mapping(bench, tmp_path):
    (tmp_path / "checkout").mkdir()
    method = _Echo({"python": sys.executable, "checkout": str(tmp_path / "checkout"),
                    "driver": str(WORKERS / "echo_driver.py"), "half_size": True})
    out = tmp_path / "run"
    run_method(RunConfig(method="test-echo", bench=bench, out=out, kinds=("single",), mask_types=("full", "circle"),
                         progress=False), method=method)
    resized = load_run(out).info["size_mapping"]["resized"]
    scene = load_rgb(bench / "cases" / "single_0001" / "scene.png")
    height, width = scene.shape[:2]
    assert resized == {f"single_000{number}/{mask}": [(width + 1) // 2, (height + 1) // 2]
                       for number in (1, 2) for mask in ("full", "circle")}
    output = load_rgb(out / "outputs" / "single_0001" / "full.png")
    assert output.shape == scene.shape and output.dtype == np.uint8
