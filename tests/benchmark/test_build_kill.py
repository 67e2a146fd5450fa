"""`fsmi build` killed with SIGKILL at random moments: the output is absent (first build), the old benchmark
(--overwrite) or the complete new one, always loadable; no process of the killed build lingers; a rerun
gives the bytes of an uninterrupted build."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fsmi_bench.benchmark.builder import _remove_stale_staging
from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.io import save_png

REPO_ROOT = Path(__file__).resolve().parents[2]


def _source(root: Path) -> Path:
    """An `fsmi:` folder of 16 hand-made cases (quick to load, unlike the embedded photos)."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = []
    for number in range(16):
        scene = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        gt = scene.copy()
        gt[20 + number:60, 30:80] = 255 - gt[20 + number:60, 30:80]
        save_png(root / f"c{number}" / "scene.png", scene)
        save_png(root / f"c{number}" / "gt.png", gt)
        lines.append(json.dumps({"case_id": f"case_{number:02d}", "kind": "single", "op": "add", "scenario": "indoor",
                                 "instruction": "add a box", "label": "box", "scene": f"c{number}/scene.png",
                                 "gt": f"c{number}/gt.png"}))
    (root / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _digests(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _build(source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from fsmi_bench.cli import main; main(prog_name='fsmi')", "build", "--out", str(out),
            "--source", f"fsmi:{source}", "--size", "96", *extra]


def _processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line names ``text`` (the killed build and its pool workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace") and \
                        "State:\tZ" not in (entry / "status").read_text():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_kill_at_random_moments_leaves_nothing_the_old_or_the_new_benchmark(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    source = _source(tmp_path / "source")
    reference = tmp_path / "reference"
    started = time.monotonic()
    subprocess.run(_build(source, reference), cwd=REPO_ROOT, env=environment, capture_output=True, timeout=300,
                   check=True)
    duration = time.monotonic() - started
    new = _digests(reference)
    old_bench = tmp_path / "old"
    subprocess.run(_build(source, old_bench, "--seed", "1"), cwd=REPO_ROOT, env=environment, capture_output=True,
                   timeout=300, check=True)
    old = _digests(old_bench)

    generator = random.Random(0)
    outcomes = []
    for attempt in range(3):
        overwrite = attempt % 2 == 1
        out = tmp_path / f"bench{attempt}"
        if overwrite:
            shutil.copytree(old_bench, out)
        command = _build(source, out, *(["--overwrite"] if overwrite else []))
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(generator.uniform(0.2, 1.0) * duration)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if out.exists():
            found = _digests(out)
            assert found in (new, old) and (found == new or overwrite), "a half-built or mixed benchmark"
            load_benchmark(out, verify=True)
            outcomes.append("new" if found == new else "old")
        else:
            assert not overwrite or list(tmp_path.glob(f".{out.name}.old-*")), "the old benchmark is lost"
            outcomes.append("absent")
        deadline = time.monotonic() + 5  # the pool's workers see their task pipe close
        while time.monotonic() < deadline and _processes_naming(str(out)):
            time.sleep(0.05)
        assert _processes_naming(str(out)) == [], "a worker of the killed build is still running"

        finished = subprocess.run(command + ([] if overwrite else ["--overwrite"]), cwd=REPO_ROOT, env=environment,
                                  capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr
        assert _digests(out) == new
        assert [path.name for path in tmp_path.iterdir() if path.name.startswith(f".{out.name}.")] == []
    assert "absent" in outcomes or "old" in outcomes, f"no kill landed mid-build: {outcomes}"


def test_a_build_killed_between_its_renames_gets_the_old_benchmark_back(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    retired = tmp_path / f".bench.old-{int(dead.stdout)}"
    (retired / "cases").mkdir(parents=True)
    (retired / "manifest.jsonl").write_text("{}\n")
    _remove_stale_staging(tmp_path / "bench")
    assert (tmp_path / "bench" / "manifest.jsonl").read_text() == "{}\n" and not retired.exists()
