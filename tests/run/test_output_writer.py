"""Outputs written beside the edits (in order, identical ones encoded once, errors kept per output), and a
resumed run that knows its outputs without decoding them, yet decodes any file changed since."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fsmi_bench.run import engine
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.output_writer import OutputWriter, VerifiedOutputs, verified_outputs_path
from tests.support.run_fixtures import make_benchmark, output_digests


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=2)


def _run(bench: Path, out: Path, method: str = "identity"):
    return run_method(RunConfig(method=method, bench=bench, out=out, progress=False))


def _count_decodes(monkeypatch) -> list:
    decoded = []
    original = engine.is_valid_output

    def counting(path, width, height):
        decoded.append(Path(path).name)
        return original(path, width, height)

    monkeypatch.setattr(engine, "is_valid_output", counting)
    return decoded


def test_a_resumed_run_knows_its_outputs_without_decoding_them(bench, tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = _run(bench, out)
    record = json.loads(verified_outputs_path(out / "run.json").read_text())
    digests = output_digests(out)
    assert len(record) == first.written == first.selected
    assert {f"outputs/{key}": sha for key, sha in digests.items()} == {
        key: entry[4] for key, entry in record.items()}  # the sha256 of each written file
    decoded = _count_decodes(monkeypatch)
    again = _run(bench, out)
    assert (again.written, again.skipped, decoded) == (0, first.selected, [])


def test_a_file_changed_since_is_decoded_even_with_its_old_time(bench, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _run(bench, out)
    before = output_digests(out)
    damaged = out / "outputs" / "single_0002" / "circle.png"
    times = damaged.stat()
    damaged.write_bytes(damaged.read_bytes()[:60])  # truncated, then its time put back
    os.utime(damaged, ns=(times.st_atime_ns, times.st_mtime_ns))
    decoded = _count_decodes(monkeypatch)
    summary = _run(bench, out)
    assert (summary.written, summary.skipped, decoded) == (1, summary.selected - 1, ["circle.png"])
    assert output_digests(out) == before


def test_an_unreadable_record_means_decoding_everything_again(bench, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _run(bench, out)
    verified_outputs_path(out / "run.json").write_text("[1, 2")
    decoded = _count_decodes(monkeypatch)
    summary = _run(bench, out)
    assert (summary.written, summary.skipped, len(decoded)) == (0, summary.selected, summary.selected)
    assert len(VerifiedOutputs.load(verified_outputs_path(out / "run.json"), out).entries) == summary.selected


def test_the_writer_keeps_order_encodes_repeats_once_and_reports_each_error(tmp_path):
    encoded = []

    def encode(image):
        encoded.append(int(image[0, 0, 0]))
        if image[0, 0, 0] == 7:
            raise ValueError("cannot encode seven")
        return image.tobytes()

    writer = OutputWriter(encode)
    images = [np.full((4, 4, 3), value, np.uint8) for value in (1, 1, 1, 7, 2, 2, 1)]
    outcomes = []
    for number, image in enumerate(images):
        outcomes += writer.submit(number, tmp_path / f"{number}.bin", image, None)
        assert len(outcomes) >= number + 1 - 3  # at most MAX_WAITING (2) wait, plus the one just queued
    outcomes += writer.close()
    assert [outcome.item for outcome in outcomes] == list(range(7))
    assert encoded == [1, 7, 2, 1]  # a repeat of the image before reuses its bytes
    assert [outcome.error is None for outcome in outcomes] == [True, True, True, False, True, True, True]
    assert "cannot encode seven" in str(outcomes[3].error) and not (tmp_path / "3.bin").exists()
    assert (tmp_path / "6.bin").read_bytes() == images[6].tobytes()


def test_a_full_disk_during_a_background_write_stops_the_run(bench, tmp_path, monkeypatch):
    calls = []

    def full(path, data):
        calls.append(path)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    real = engine.atomic_write_bytes
    monkeypatch.setattr(engine, "atomic_write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        _run(bench, tmp_path / "run")
    monkeypatch.setattr(engine, "atomic_write_bytes", real)
    summary = _run(bench, tmp_path / "run")  # the rerun finishes what is missing
    assert summary.written + summary.skipped == summary.selected and summary.skipped >= 5


def test_scoring_uses_the_recorded_sha256_only_for_unchanged_files(bench, tmp_path, monkeypatch):
    """fsmi score takes an output's sha256 from the run's record; a file changed since (its time put back)
    is hashed again, so its new pixels get a new value, never the cached one of the old file."""
    import fsmi_bench.io
    from fsmi_bench.io import load_rgb, save_png
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    out = tmp_path / "run"
    _run(bench, out, method="inpaint")
    config = ScoreConfig(bench=bench, run=out, metrics=("bg_psnr", "whole_psnr"), out=tmp_path / "r.parquet",
                         cache_dir=tmp_path / "cache")
    first, _ = score_run(config)
    hashed = []
    real = fsmi_bench.io.sha256_file
    monkeypatch.setattr(fsmi_bench.io, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    changed = out / "outputs" / "single_0001" / "full.png"
    times = changed.stat()
    save_png(changed, 255 - load_rgb(changed))
    os.utime(changed, ns=(times.st_atime_ns, times.st_mtime_ns))
    second, _ = score_run(config)
    assert hashed == ["full.png"]  # only the changed output is read to know its sha256
    before, after = (frame.set_index(["case_id", "mask_type", "metric"])["value"] for frame in (first, second))
    changed_row = ("single_0001", "full", "bg_psnr")
    assert after[changed_row] != before[changed_row]
    assert after.drop(changed_row).equals(before.drop(changed_row))
