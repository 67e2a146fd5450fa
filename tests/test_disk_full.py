"""A full disk, for real: the output folder lies on a small tmpfs filled to the last byte. `fsmi build`, `run`,
`score` and `report` each print one line ("No space left on device") and exit 2; what was there before (a
benchmark, a run, a results table, a report) is left intact and usable, and nothing half-written remains.

Mounting needs root (or CAP_SYS_ADMIN); without it the tests skip, saying so."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.cli import main
from fsmi_bench.run.folder import load_run
from tests.support.run_fixtures import make_benchmark


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at ``tmp_path/disk``, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", f"fsmi-test-{uuid.uuid4().hex[:8]}",
                           str(mount_point)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Write zeros until the disk is full; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        block = b"\0" * 65536
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    # the last partial block may not have been flushed; top up byte by byte
    with open(filler, "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def _digests(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _disk_full_line(result) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    # a progress bar may come before it (on stderr, redrawn with \r); the error is the one last line
    lines = result.output.rstrip("\n").split("\n")
    assert "Traceback" not in result.output and all("\r" in line for line in lines[:-1]), result.output
    assert lines[-1].startswith("Error: No space left on device"), result.output


def _leftovers(disk: Path) -> list[str]:
    """Temporary files or folders of atomic writes, builds or swaps that a failed command left."""
    return [path.name for path in disk.rglob("*") if path.name.startswith(".") and ".tmp" in path.name
            or ".building-" in path.name or ".old-" in path.name]


def test_build_on_a_full_disk_keeps_the_old_benchmark(small_disk, tmp_path):
    runner = CliRunner()
    out = small_disk / "bench"
    arguments = ["build", "--out", str(out), "--single", "1", "--multi", "0", "--size", "64", "--no-previews"]
    assert runner.invoke(main, arguments).exit_code == 0
    before = _digests(out)
    filler = _fill(small_disk)
    result = runner.invoke(main, arguments[:3] + ["--single", "3", "--multi", "2"] + arguments[7:] + ["--overwrite"])
    _disk_full_line(result)
    assert _digests(out) == before and len(load_benchmark(out, verify=True).rows) == 9
    assert _leftovers(small_disk) == []
    filler.unlink()
    assert runner.invoke(main, arguments + ["--overwrite"]).exit_code == 0


def test_run_on_a_full_disk_stops_at_once_and_resumes_when_there_is_room(small_disk, tmp_path):
    bench = make_benchmark(tmp_path / "bench", n_single=2, n_multi=2)
    out = small_disk / "run"
    runner = CliRunner()
    first = ["run", "--method", "identity", "--bench", str(bench), "--out", str(out), "--no-progress"]
    assert runner.invoke(main, first + ["--limit", "1"]).exit_code == 0
    before = _digests(out)
    filler = _fill(small_disk)
    result = runner.invoke(main, first)
    _disk_full_line(result)
    assert _digests(out / "outputs") == {key[len("outputs/"):]: value for key, value in before.items()
                                         if key.startswith("outputs/")}
    assert not (out / "failures.jsonl").exists() or (out / "failures.jsonl").read_text() == ""  # not 9 failures
    load_run(out)  # run.json still reads
    assert _leftovers(small_disk) == []
    filler.unlink()
    result = runner.invoke(main, first)
    assert result.exit_code == 0 and "9 written, 3 already done, 0 failed" in result.output, result.output


def test_score_and_report_on_a_full_disk_keep_the_old_table_and_report(small_disk, tmp_path):
    bench = make_benchmark(tmp_path / "bench", n_single=2, n_multi=1)
    runner = CliRunner()
    for method in ("identity", "inpaint"):
        assert runner.invoke(main, ["run", "--method", method, "--bench", str(bench), "--out",
                                    str(tmp_path / method), "--no-progress"]).exit_code == 0
    table = small_disk / "results.parquet"
    score = ["score", "--bench", str(bench), "--metrics", "bg_psnr,whole_psnr", "--no-cache", "--no-progress",
             "--out", str(table)]
    assert runner.invoke(main, score + ["--run", str(tmp_path / "identity")]).exit_code == 0
    report = ["report", str(table), "--out", str(small_disk / "report.md"), "--resamples", "50"]
    assert runner.invoke(main, report).exit_code == 0
    before = _digests(small_disk)
    filler = _fill(small_disk)

    _disk_full_line(runner.invoke(main, score + ["--run", str(tmp_path / "inpaint")]))
    _disk_full_line(runner.invoke(main, report + ["--latex"]))
    after = _digests(small_disk)
    del after["filler"]
    assert after == before and _leftovers(small_disk) == []
    import pandas as pd

    assert set(pd.read_parquet(table).method) == {"identity"}  # the old table still reads
    os.unlink(filler)
    assert runner.invoke(main, score + ["--run", str(tmp_path / "inpaint")]).exit_code == 0
    assert set(pd.read_parquet(table).method) == {"identity", "inpaint"}
    shutil.rmtree(tmp_path / "identity")


def test_a_full_disk_is_not_recorded_as_a_failure_of_every_edit(tmp_path, monkeypatch):
    """Room for the small record files but none for outputs (a quota, say): the run stops at the first output
    with one line, instead of recording every edit as failed; injected at the engine's write layer."""
    from fsmi_bench.run import engine

    bench = make_benchmark(tmp_path / "bench", n_single=2, n_multi=1)
    real_write = engine.atomic_write_bytes

    def write(path, data):
        if Path(path).suffix == ".png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(engine, "atomic_write_bytes", write)
    result = CliRunner().invoke(main, ["run", "--method", "identity", "--bench", str(bench), "--out",
                                       str(tmp_path / "run"), "--no-progress"])
    _disk_full_line(result)
    assert not (tmp_path / "run" / "failures.jsonl").exists()
