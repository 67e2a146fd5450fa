"""One writer at a time, with real processes: a run folder is claimed under a lock before the method is set up,
a second process of the same run file exits at once naming the holder, shards still run side by side, and a
second `fsmi score --out` into one results table waits for the first and keeps both methods' rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.io import exclusive_lock
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from fsmi_bench.run.method import METHODS
from tests.support.run_fixtures import make_benchmark, output_digests

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = ("import sys; from fsmi_bench.run.method import METHODS; "
       "METHODS.register('tests-seeded-noise', 'tests.support.run_fixtures:SeededNoise'); "
       "from fsmi_bench.cli import main; main(sys.argv[1:], prog_name='fsmi')")
METHODS.register("tests-seeded-noise", "tests.support.run_fixtures:SeededNoise", "test only: seeded noise in the mask")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=1)


def _start(*arguments) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", CLI, *map(str, arguments)], cwd=REPO_ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def _config_file(tmp_path: Path, **options) -> Path:
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    path.write_text(json.dumps(options))
    return path


def _one_line_refusal(returncode: int, stderr: str) -> None:
    assert returncode == 2, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_two_runs_of_different_methods_on_one_folder_do_not_mix(bench, tmp_path):
    """Both start at once; the first to claim the folder runs, the other exits 2 before writing anything."""
    out = tmp_path / "run"
    slow = _config_file(tmp_path, setup_s=1.5)
    noise = _start("run", "--method", "tests-seeded-noise", "--bench", bench, "--out", out, "--seed", "7",
                   "--config", slow, "--no-progress")
    identity = _start("run", "--method", "identity", "--bench", bench, "--out", out, "--no-progress")
    results = {"tests-seeded-noise": _finish(noise), "identity": _finish(identity)}
    winners = [name for name, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    loser = next(name for name in results if name not in winners)
    _one_line_refusal(*results[loser])
    assert "another run" in results[loser][1] or "in use by another fsmi process" in results[loser][1]
    assert load_run(out).method == winners[0]
    clean = tmp_path / "clean"
    options = {"method_config": {"setup_s": 1.5}, "seed": 7} if winners[0] == "tests-seeded-noise" else {}
    run_method(RunConfig(method=winners[0], bench=bench, out=clean, progress=False, **options))
    assert output_digests(out) == output_digests(clean)
    assert not (out / "failures.jsonl").read_text().strip()


def test_a_second_process_of_the_same_run_exits_naming_the_holder(bench, tmp_path):
    out = tmp_path / "run"
    slow = _config_file(tmp_path, delay_s=0.6)
    arguments = ("run", "--method", "tests-seeded-noise", "--bench", bench, "--out", out, "--config", slow,
                 "--no-progress")
    first = _start(*arguments)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((out / "outputs").rglob("*.png")):
        time.sleep(0.02)
    second = _start(*arguments)
    returncode, stderr = _finish(second)
    _one_line_refusal(returncode, stderr)
    assert f"in use by another fsmi process (pid {first.pid} " in stderr
    assert _finish(first)[0] == 0
    assert len(output_digests(out)) == 9


def test_shards_of_one_run_still_run_side_by_side(bench, tmp_path):
    out = tmp_path / "run"
    slow = _config_file(tmp_path, setup_s=1.0)
    shards = [_start("run", "--method", "tests-seeded-noise", "--bench", bench, "--out", out, "--config", slow,
                     "--shard", f"{index}/2", "--no-progress") for index in range(2)]
    for process in shards:
        returncode, stderr = _finish(process)
        assert returncode == 0, stderr
    assert len(load_run(out).info["shards"]) == 2 and len(output_digests(out)) == 9


def test_a_failed_setup_leaves_the_folder_unclaimed(bench, tmp_path):
    """A run that never got past its method's set-up does not keep the folder from another method."""
    out = tmp_path / "run"
    METHODS.register("tests-needs-weights", "tests.support.run_fixtures:NeedsWeights", "test only", needs=("weights",))
    with pytest.raises(MissingWeightsError):
        run_method(RunConfig(method="tests-needs-weights", bench=bench, out=out, progress=False))
    assert not (out / "run.json").exists()
    run_method(RunConfig(method="identity", bench=bench, out=out, progress=False))
    assert load_run(out).method == "identity"


def test_score_waits_for_the_results_table_lock_and_keeps_both_methods(bench, tmp_path):
    """This process holds the table's lock; a `fsmi score` subprocess scores, then waits, then merges."""
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    runs = {}
    for method in ("identity", "copy-paste"):
        runs[method] = tmp_path / method
        run_method(RunConfig(method=method, bench=bench, out=runs[method], progress=False))
    table = tmp_path / "results" / "all.parquet"
    metrics = ("bg_psnr", "fg_psnr", "whole_psnr")
    score_run(ScoreConfig(bench=bench, run=runs["identity"], metrics=metrics, out=table))
    with exclusive_lock(table.parent / f".{table.name}.lock", "results table", wait_s=0):
        second = _start("score", "--bench", bench, "--metrics", ",".join(metrics), "--out", table, "--progress",
                        "--run", runs["copy-paste"])
        seen = ""
        while "100%" not in seen and second.poll() is None:  # its progress bar: every case scored
            seen += second.stderr.read(1)
        time.sleep(1.0)
        assert second.poll() is None, "the second scoring pass must wait for the lock"
        assert set(pd.read_parquet(table)["method"]) == {"identity"}
    returncode, stderr = _finish(second)
    assert returncode == 0, seen + stderr
    assert set(pd.read_parquet(table)["method"]) == {"identity", "copy-paste"}
