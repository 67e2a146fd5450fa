"""`fsmi generate-masks --bench` is transactional: killed at any moment it leaves the old benchmark or the new
one, both loadable; any valid case id works; hand-drawn masks are kept unless asked."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsmi_bench.benchmark.manifest import MANIFEST_NAME, load_benchmark
from fsmi_bench.benchmark.regenerate_masks import regenerate_benchmark_masks
from fsmi_bench.io import sha256_file, write_jsonl
from fsmi_bench.schema import MASK_CONDITIONS
from tests.support.run_fixtures import make_benchmark

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=6, n_multi=4, width=64, height=48,
                          mask_types=MASK_CONDITIONS)


def _copy(pristine: Path, to: Path) -> Path:
    shutil.copytree(pristine, to)
    return to


def _rename_cases(bench: Path, names: dict[str, str]) -> None:
    rows = [json.loads(line) for line in (bench / MANIFEST_NAME).read_text().splitlines()]
    write_jsonl(bench / MANIFEST_NAME, [{**row, "case_id": names.get(row["case_id"], row["case_id"])} for row in rows])


def test_kill_at_random_moments_leaves_the_old_or_the_new_benchmark(pristine, tmp_path):
    reference = _copy(pristine, tmp_path / "reference")
    regenerate_benchmark_masks(reference, seed=5)
    old_manifest = (pristine / MANIFEST_NAME).read_bytes()
    new_manifest = (reference / MANIFEST_NAME).read_bytes()
    assert old_manifest != new_manifest
    bench = _copy(pristine, tmp_path / "bench")
    command = [sys.executable, "-c", "from fsmi_bench.cli import main; main(prog_name='fsmi')", "generate-masks",
               "--bench", str(bench), "--seed", "5"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, timeout=120,
                   check=True)  # an uninterrupted run, to time it; then start again from the old benchmark
    duration = time.monotonic() - started
    shutil.rmtree(bench)
    _copy(pristine, bench)
    generator = random.Random(0)
    outcomes = set()
    for _ in range(4):
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(generator.uniform(0.4, 1.0) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait()
        manifest = (bench / MANIFEST_NAME).read_bytes()
        assert manifest in (old_manifest, new_manifest)
        outcomes.add("new" if manifest == new_manifest else "old")
        load_benchmark(bench, verify=True)  # every file the manifest names is there, with its sha256
        if manifest == new_manifest:
            shutil.rmtree(bench)
            _copy(pristine, bench)
    finished = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert (bench / MANIFEST_NAME).read_bytes() == new_manifest
    masks = {path.relative_to(bench).as_posix(): sha256_file(path) for path in sorted(bench.rglob("masks/*.png"))}
    expected = {path.relative_to(reference).as_posix(): sha256_file(path)
                for path in sorted(reference.rglob("masks/*.png"))}
    assert masks == expected, "masks left by killed runs are removed after the swap"


def test_case_ids_without_a_number_work(pristine, tmp_path):
    bench = _copy(pristine, tmp_path / "bench")
    _rename_cases(bench, {"single_0002": "kitchen-cup", "multi_0001": "garden.dog"})
    regenerate_benchmark_masks(bench, seed=3)
    benchmark = load_benchmark(bench, verify=True)
    assert {"kitchen-cup", "garden.dog"} <= set(benchmark.case_ids())
    reseeded = {row.case_id: row.seed for row in benchmark.rows}
    original = {row.case_id: row.seed for row in load_benchmark(pristine).rows}
    assert reseeded["kitchen-cup"] != original["single_0002"]


def test_hand_drawn_masks_are_kept_unless_asked(pristine, tmp_path):
    bench = _copy(pristine, tmp_path / "bench")
    rows = [json.loads(line) for line in (bench / MANIFEST_NAME).read_text().splitlines()]
    for row in rows:
        if row["mask_type"] == "circle":
            row["mask_params"] = {"type": "circle", "drawn_by": "user"}
    write_jsonl(bench / MANIFEST_NAME, rows)
    drawn = {row["case_id"]: row["mask_sha256"] for row in rows if row["mask_type"] == "circle"}
    regenerate_benchmark_masks(bench, seed=9)
    kept = {row.case_id: row.mask_sha256 for row in load_benchmark(bench).rows if row.mask_type == "circle"}
    assert kept == drawn
    regenerate_benchmark_masks(bench, seed=9, replace_drawn=True)
    redrawn = {row.case_id: row for row in load_benchmark(bench).rows if row.mask_type == "circle"}
    assert all(row.mask_params.get("drawn_by") != "user" for row in redrawn.values())
    assert {case_id: row.mask_sha256 for case_id, row in redrawn.items()} != drawn


def test_a_killed_builds_temporary_folder_is_removed_by_the_next_build(tmp_path):
    from fsmi_bench.benchmark.builder import _prepare_output

    out = tmp_path / "bench"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".bench.building-{int(dead.stdout)}"
    (stale / "cases").mkdir(parents=True)
    alive = tmp_path / f".bench.building-{os.getppid()}"  # a build still running keeps its folder
    alive.mkdir()
    staging = _prepare_output(out, overwrite=False)
    assert not stale.exists() and alive.is_dir() and staging.is_dir()
