"""`fsmi import-outputs` against hostile folders and files: two writers at once, an import beside `fsmi run`,
imports killed midway, files that are bombs, animated, rotated by EXIF, or not images at all, and CSVs as
spreadsheets write them. Each ends with the right run folder, or one line and exit 2; nothing is mixed."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import load_rgb, save_png, sha256_file
from fsmi_bench.run import import_outputs as import_module
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from fsmi_bench.run.import_outputs import ImportConfig, import_outputs
from tests.run.test_run_locks import _finish, _one_line_refusal, _start
from tests.support.run_fixtures import make_benchmark, output_digests


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=1)


def _write_outputs(bench: Path, folder: Path, shift: int = 0) -> dict[tuple[str, str], Path]:
    """An output per row (the scene, its values shifted by ``shift``) in the folder layout."""
    benchmark = load_benchmark(bench)
    written = {}
    for row in benchmark.rows:
        scene = load_rgb(benchmark.path(row.scene)).astype(np.int16)
        path = folder / row.case_id / f"{row.mask_type}.png"
        save_png(path, np.clip(scene + shift, 0, 255).astype(np.uint8))
        written[(row.case_id, row.mask_type)] = path
    return written


def _config(bench, source, out, **changes) -> ImportConfig:
    return ImportConfig(**{"bench": bench, "source": source, "method_name": "theirs", "out": out, "progress": False,
                           **changes})


def _statuses(out: Path) -> dict[tuple[str, str], str]:
    run = load_run(out)
    return {key: run.failure_status(key) for key in run.failures}


def test_two_imports_at_once_into_one_folder_never_both_win(bench, tmp_path):
    _write_outputs(bench, tmp_path / "a")
    _write_outputs(bench, tmp_path / "b", shift=9)
    out = tmp_path / "out"
    first = _start("import-outputs", "--bench", bench, "--from", tmp_path / "a", "--method-name", "alice",
                   "--out", out, "--no-progress")
    second = _start("import-outputs", "--bench", bench, "--from", tmp_path / "b", "--method-name", "bob",
                    "--out", out, "--no-progress")
    results = {"alice": _finish(first), "bob": _finish(second)}
    winners = [name for name, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    loser = next(name for name in results if name not in winners)
    _one_line_refusal(*results[loser])
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == winners[0] and info["status"] == "complete"
    source = tmp_path / ("a" if winners[0] == "alice" else "b")
    assert {Path(entry["path"]).parent.parent for entry in info["imported"]["files"].values()} == {source}


def test_an_import_beside_a_running_fsmi_run_is_refused_and_changes_nothing(bench, tmp_path):
    config = tmp_path / "slow.json"
    config.write_text(json.dumps({"setup_s": 2.0, "delay_s": 0.05}))
    out = tmp_path / "run"
    running = _start("run", "--method", "tests-seeded-noise", "--bench", bench, "--out", out, "--config", config,
                     "--no-progress")
    deadline = time.monotonic() + 30
    while not (out / "run.json").exists() and time.monotonic() < deadline:  # the run claims its folder first
        time.sleep(0.05)
    _write_outputs(bench, tmp_path / "theirs")
    imported = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "theirs"),
                                         "--method-name", "theirs", "--out", str(out), "--no-progress"])
    assert imported.exit_code == 2 and len(imported.output.strip().splitlines()) == 1, imported.output
    assert "in use by another fsmi process" in imported.output or "made by `fsmi run`" in imported.output
    code, stderr = _finish(running)
    assert code == 0, stderr
    clean = tmp_path / "clean"
    run_method(RunConfig(method="tests-seeded-noise", bench=bench, out=clean, progress=False,
                         method_config={"setup_s": 2.0, "delay_s": 0.05}))
    assert output_digests(out) == output_digests(clean)
    assert "provenance" not in json.loads((out / "run.json").read_text())
    again = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "theirs"),
                                      "--method-name", "theirs", "--out", str(out), "--no-progress"])
    assert again.exit_code == 2 and "made by `fsmi run`" in again.output


def _kill_after(monkeypatch, count: int) -> None:
    """The import is interrupted (Ctrl-C) while checking its ``count + 1``-th image."""
    real = import_module.check_image
    calls = []

    def check(*arguments):
        calls.append(1)
        if len(calls) > count:
            raise KeyboardInterrupt
        return real(*arguments)

    monkeypatch.setattr(import_module, "check_image", check)


def test_a_reimport_killed_midway_never_mixes_two_imports_and_resumes(bench, tmp_path, monkeypatch):
    first = _write_outputs(bench, tmp_path / "a")
    second = _write_outputs(bench, tmp_path / "b", shift=9)
    out = tmp_path / "out"
    import_outputs(_config(bench, tmp_path / "a", out))
    a_digests = output_digests(out)
    _kill_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        import_outputs(_config(bench, tmp_path / "b", out))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "running" and info["imported"]["source"] == str((tmp_path / "b").resolve())
    left = output_digests(out)
    assert len(left) == 3 and not set(left.values()) & set(a_digests.values())  # only b's outputs, never a's
    scored = CliRunner().invoke(main, ["score", "--bench", str(bench), "--run", str(out), "--metrics", "bg_psnr",
                                       "--out", str(tmp_path / "r.parquet"), "--no-progress", "--no-cache"])
    assert scored.exit_code == 0, scored.output
    monkeypatch.undo()
    summary = import_outputs(_config(bench, tmp_path / "b", out))  # the same command again: resumed, complete
    assert summary.imported == len(second) and summary.missing == summary.invalid == 0
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    assert [item["status"] for item in info["invocations"]] == ["complete", "interrupted", "complete"]
    clean = tmp_path / "clean"
    import_outputs(_config(bench, tmp_path / "b", clean))
    assert output_digests(out) == output_digests(clean)
    # Once more with one file changed: the others are kept as they are, that one is made again.
    save_png(second[sorted(second)[0]], load_rgb(first[sorted(first)[0]]))
    again = import_outputs(_config(bench, tmp_path / "b", out))
    assert again.kept == len(second) - 1 and again.imported == len(second)


def test_an_interrupted_first_import_resumes_and_no_run_adopts_its_folder(bench, tmp_path, monkeypatch):
    _write_outputs(bench, tmp_path / "theirs")
    out = tmp_path / "out"
    _kill_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        import_outputs(_config(bench, tmp_path / "theirs", out))
    monkeypatch.undo()
    ran = CliRunner().invoke(main, ["run", "--method", "copy-paste", "--bench", str(bench), "--out", str(out),
                                    "--no-progress"])
    assert ran.exit_code == 2 and "imported by `fsmi import-outputs`" in ran.output, ran.output
    result = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "theirs"),
                                       "--method-name", "theirs", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_outputs_without_a_run_file_are_adopted_by_neither_command(bench, tmp_path):
    stray = tmp_path / "out" / "outputs" / "single_0001" / "full.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"someone's file")
    _write_outputs(bench, tmp_path / "theirs")
    for arguments in (["run", "--method", "identity"],
                      ["import-outputs", "--from", str(tmp_path / "theirs"), "--method-name", "theirs"]):
        result = CliRunner().invoke(main, [*arguments, "--bench", str(bench), "--out", str(tmp_path / "out"),
                                           "--no-progress"])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert stray.read_bytes() == b"someone's file" and not (tmp_path / "out" / "run.json").exists()


def test_a_source_inside_the_out_folder_is_refused(bench, tmp_path):
    out = tmp_path / "out"
    _write_outputs(bench, tmp_path / "a")
    import_outputs(_config(bench, tmp_path / "a", out))
    before = output_digests(out)
    with pytest.raises(BadInputError, match="lies inside --out"):
        import_outputs(_config(bench, out / "outputs", out))
    rows = ["case_id,mask_type,path"] + [f"{path.parent.name},{path.stem},{path}" for path in
                                          sorted((out / "outputs").rglob("*.png"))]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match="lies inside --out"):
        import_outputs(_config(bench, tmp_path / "mine.csv", out))
    assert output_digests(out) == before


@pytest.mark.parametrize("source", ["/dev/null", "fifo"])
def test_a_source_that_is_a_device_or_a_pipe_is_one_line(bench, tmp_path, source):
    import os

    if source == "fifo":
        source = tmp_path / "pipe.csv"
        os.mkfifo(source)
    with pytest.raises(BadInputError, match="neither a folder nor a file"):
        import_outputs(_config(bench, Path(source), tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_spreadsheet_csv_with_a_byte_order_mark_and_crlf_is_read(bench, tmp_path):
    written = _write_outputs(bench, tmp_path / "files")
    lines = ["case_id,mask_type,path"] + [f"{case},{mask},files/{case}/{mask}.png" for case, mask in sorted(written)]
    (tmp_path / "excel.csv").write_bytes("\r\n".join(lines).encode("utf-8-sig") + b"\r\n")
    summary = import_outputs(_config(bench, tmp_path / "excel.csv", tmp_path / "out"))
    assert summary.imported == len(written) and summary.missing == 0


@pytest.mark.parametrize("path", ["~nosuchuser_fsmi/x.png", "~nosuchuser_fsmi"])
def test_a_home_folder_of_no_user_is_one_line(bench, tmp_path, path):
    row = load_benchmark(bench).rows[0]
    (tmp_path / "o.csv").write_text(f"case_id,mask_type,path\n{row.case_id},{row.mask_type},{path}\n")
    result = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "o.csv"),
                                       "--method-name", "x", "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "line 2: cannot expand" in result.output and not (tmp_path / "out" / "run.json").exists()


def test_exif_orientation_is_applied(bench, tmp_path):
    """A camera stores the pixels as shot and says how to turn them (EXIF Orientation 6: turn 90° clockwise)."""
    benchmark = load_benchmark(bench)
    row = benchmark.rows[0]
    scene = load_rgb(benchmark.path(row.scene))
    stored = Image.fromarray(np.rot90(scene, 1))  # what the sensor saw, before the turn
    exif = Image.Exif()
    exif[0x0112] = 6
    folder = tmp_path / "camera" / row.case_id
    folder.mkdir(parents=True)
    stored.save(folder / f"{row.mask_type}.png", exif=exif.tobytes())
    stored.save(tmp_path / "camera.jpg", quality=95, exif=exif.tobytes())
    out = tmp_path / "out"
    import_outputs(_config(bench, tmp_path / "camera", out))
    output = load_rgb(out / "outputs" / row.case_id / f"{row.mask_type}.png")
    np.testing.assert_array_equal(output, scene)  # upright, not stretched across the other axis
    info = json.loads((out / "run.json").read_text())
    assert info["imported"]["files"][f"{row.case_id}/{row.mask_type}"]["exif_orientation"] == 6
    assert info["size_mapping"]["resized"] == {}
    (tmp_path / "o.csv").write_text(f"case_id,mask_type,path\n{row.case_id},{row.mask_type},camera.jpg\n")
    import_outputs(_config(bench, tmp_path / "o.csv", tmp_path / "jpeg"))
    output = load_rgb(tmp_path / "jpeg" / "outputs" / row.case_id / f"{row.mask_type}.png").astype(float)
    assert np.abs(output - scene).mean() < 6  # JPEG's loss only


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG that states width x height pixels in its header (IHDR) and holds almost nothing."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_bombs_animations_and_the_pixel_limit_are_bad_outputs(bench, tmp_path, monkeypatch):
    written = _write_outputs(bench, tmp_path / "theirs")
    keys = sorted(written)
    written[keys[0]].write_bytes(_huge_png_header(20000, 20000))  # 400 Mpx
    written[keys[1]].write_bytes(_huge_png_header(9000, 8000))  # 72 Mpx, above fsmi's default limit of 64 Mpx
    frames = [Image.fromarray(load_rgb(written[keys[3]])), Image.fromarray(255 - load_rgb(written[keys[3]]))]
    frames[0].save(written[keys[2]].with_suffix(".png"), save_all=True, append_images=frames[1:])  # an APNG
    out = tmp_path / "out"
    summary = import_outputs(_config(bench, tmp_path / "theirs", out))
    assert (summary.invalid, summary.missing) == (3, 0)
    failures = {(row["case_id"], row["mask_type"]): row for row in map(json.loads, (out / "failures.jsonl")
                                                                          .read_text().splitlines())}
    assert "20000x20000" in failures[keys[0]]["error"] or "decompression bomb" in failures[keys[0]]["error"].lower()
    assert "9000x8000 = 72000000 pixels, above the limit" in failures[keys[1]]["error"]
    assert "animated image (2 frames)" in failures[keys[2]]["error"]
    assert {row["status"] for row in failures.values()} == {"bad_output"}
    monkeypatch.setenv("FSMI_MAX_IMAGE_PIXELS", "1000")  # the tiny benchmark's 40x32 outputs are above it
    summary = import_outputs(_config(bench, tmp_path / "theirs", tmp_path / "out2"))
    assert summary.invalid == len(written) and summary.imported == 0


def test_stray_files_are_named(bench, tmp_path):
    _write_outputs(bench, tmp_path / "theirs")
    for name in ("notes.txt", "single_0001/ful.png", "nocase/full.png"):
        (tmp_path / "theirs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "theirs" / name).write_text("x")
    result = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "theirs"),
                                       "--method-name", "theirs", "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 files matched no case and were not used: nocase/full.png, notes.txt, single_0001/ful.png" in result.output


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


FILE_KINDS = ("good", "truncated", "random", "empty", "cmyk-jpeg", "16-bit", "la", "wrong-size", "gif-animated",
              "directory", "symlink-out", "huge")


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_source_folders_import_or_refuse_cleanly(bench, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz")
    written = _write_outputs(bench, work / "theirs")
    rng = np.random.default_rng(0)
    for key in data.draw(st.lists(st.sampled_from(sorted(written)), max_size=5, unique=True), label="damaged"):
        kind = data.draw(st.sampled_from(FILE_KINDS), label="kind")
        path = written[key]
        scene = load_rgb(path)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[: data.draw(st.integers(0, 200), label="cut")])
        elif kind == "random":
            path.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "cmyk-jpeg":
            path.unlink()
            Image.fromarray(scene).convert("CMYK").save(path.with_suffix(".jpg"))
        elif kind == "16-bit":
            path.write_bytes(_png_bytes((scene[..., 0].astype(np.uint16) * 257)))
        elif kind == "la":
            path.write_bytes(_png_bytes(scene, "LA"))
        elif kind == "wrong-size":
            path.write_bytes(_png_bytes(np.ascontiguousarray(scene[::3, ::2])))
        elif kind == "gif-animated":
            path.unlink()
            frames = [Image.fromarray(scene), Image.fromarray(255 - scene)]
            frames[0].save(path.with_suffix(".webp"), save_all=True, append_images=frames[1:])
        elif kind == "directory":
            path.unlink()
            path.mkdir()
        elif kind == "symlink-out":
            path.unlink()
            path.symlink_to("/dev/zero")
        elif kind == "huge":
            path.write_bytes(_huge_png_header(100000, 100000))
    for name in data.draw(st.lists(st.sampled_from(["../x.png", "a b/c.png", ".hidden/x.png", "x\ny/z.png",
                                                    "single_0001/full.PNG.txt"]), max_size=2), label="strays"):
        stray = work / "theirs" / name
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_text("stray")
    out = work / "given" / "out"
    before = {path for path in work.rglob("*") if not path.is_relative_to(work / "given")}
    result = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(work / "theirs"),
                                       "--method-name", "fuzz", "--out", str(out), "--no-progress"])
    assert result.exit_code in (0, 2), (result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, result.output
    else:
        info = json.loads((out / "run.json").read_text())
        assert info["status"] in ("complete", "complete_with_failures")
        assert set(_statuses(out).values()) <= {"missing_output", "bad_output"}
        assert info["counts"]["written"] + info["counts"]["failed"] == info["counts"]["selected"]
        for path in (out / "outputs").rglob("*.png"):
            assert Image.open(path).mode == "RGB"
    assert {path for path in work.rglob("*") if not path.is_relative_to(work / "given")} == before
    assert sha256_file(bench / "manifest.jsonl")
