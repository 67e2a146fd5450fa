"""Hostile input end to end: every command does its job, or prints one line and exits 2; never a traceback,
and nothing is written outside the folders it was given. A hypothesis fuzz test over manifests and CLI
arguments, plus image bombs and environment errors."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmi_bench.benchmark.manifest import MANIFEST_NAME
from fsmi_bench.cli import main
from tests.support.tiny_benchmark import write_tiny_benchmark

FIELDS = ("case_id", "kind", "op", "scenario", "complexity", "mask_type", "instruction", "seed", "width", "height",
          "scene", "mask", "mask_iou", "mask_sha256", "benchmark_version", "mask_params", "subject")
HOSTILE_VALUES = st.one_of(
    st.sampled_from(["../../x", "/etc/passwd", "..", ".", "", "a\nb", "single_0001\n", "x" * 300, "\x00",
                     "cases/../../../x.png", "fsmi-edit-9.9", "multi", "full", "circle"]),
    st.integers(min_value=-2**63, max_value=2**63), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=20))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_tiny_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=1, n_multi=1,
                                mask_types=("full", "circle"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def _assert_clean_outcome(result, allowed_to_succeed: bool = True) -> None:
    assert result.exit_code in ((0, 2) if allowed_to_succeed else (2,)), (result.exit_code, result.output,
                                                                          result.exception)
    if result.exit_code == 2:
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_manifests_are_run_and_scored_or_refused_in_one_line(pristine, tmp_path_factory, data):
    """Damage one or two fields of one or more rows (or add junk lines) and run `fsmi run` and `fsmi score`."""
    work = tmp_path_factory.mktemp("fuzz")
    bench = work / "given" / "bench"
    shutil.copytree(pristine, bench)
    lines = (bench / MANIFEST_NAME).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        index = data.draw(st.integers(0, len(lines) - 1), label="row")  # one of the real rows
        action = data.draw(st.sampled_from(["set", "drop", "duplicate", "junk"]), label="action")
        if action == "set":
            rows[index] = {**rows[index], data.draw(st.sampled_from(FIELDS), label="field"):
                           data.draw(HOSTILE_VALUES, label="value")}
        elif action == "drop":
            rows[index] = {key: value for key, value in rows[index].items()
                           if key != data.draw(st.sampled_from(FIELDS), label="dropped")}
        elif action == "duplicate":
            rows.append(rows[index])
        else:
            rows.append(data.draw(st.sampled_from([[1], "row", 3, None, {}]), label="junk"))
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (bench / MANIFEST_NAME).write_text(text)
    outside = _snapshot(work)
    run = work / "given" / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--method", "identity", "--bench", str(bench), "--out", str(run),
                                  "--no-progress"])
    _assert_clean_outcome(result)
    if result.exit_code == 0:
        scored = runner.invoke(main, ["score", "--bench", str(bench), "--run", str(run), "--metrics", "bg_psnr",
                                      "--out", str(work / "given" / "results.parquet"), "--no-progress"])
        _assert_clean_outcome(scored)
    after = _snapshot(work)
    # Everything written lies under the given folders; nothing outside them changed or appeared.
    for name, content in after.items():
        assert name.startswith("given/") or outside.get(name) == content, name
    assert not any(Path(work.parent).glob("x*")) and not (work.parent / "x.png").exists()


CLI_ARGUMENTS = st.lists(st.one_of(
    st.sampled_from(["--out", ".", "..", "/", "--bench", "--run", "--method", "identity", "--seed", "-1",
                     "--limit", "0", "--shard", "3/2", "--kinds", "triple", "--mask-types", "../x", "--types",
                     "circel", "--metrics", "nope", "--config", "/dev/null", "--size", "1", "--single", "-3"]),
    st.text(alphabet="ab./-_0", max_size=6)), max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(["run", "score", "build", "generate-masks", "show", "export", "report"]),
       arguments=CLI_ARGUMENTS)
def test_fuzzed_arguments_are_one_line_or_usage(pristine, tmp_path_factory, command, arguments):
    """Random arguments in a scratch folder: a result, or one line and exit 2; never a crash."""
    work = tmp_path_factory.mktemp("arguments")
    old = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(main, [command, *arguments])
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    _assert_clean_outcome(result)


def test_an_image_bomb_is_one_line_as_input_and_as_an_existing_output(pristine, tmp_path, monkeypatch):
    """With the pixel limit at 1000, the tiny benchmark's 40x30 scenes are bombs: one line, exit 2."""
    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--method", "identity", "--bench", str(pristine), "--out", str(run),
                                "--no-progress"]).exit_code == 0
    monkeypatch.setenv("FSMI_MAX_IMAGE_PIXELS", "1000")
    result = runner.invoke(main, ["run", "--method", "identity", "--bench", str(pristine), "--out",
                                  str(tmp_path / "run2"), "--no-progress"])
    # The scene is refused per edit (recorded as a failure), never a traceback.
    assert result.exit_code == 0 and "failed" in result.output
    failures = (tmp_path / "run2" / "failures.jsonl").read_text()
    assert "above the limit of 1000 (set FSMI_MAX_IMAGE_PIXELS" in failures
    scored = runner.invoke(main, ["score", "--bench", str(pristine), "--run", str(run), "--metrics", "bg_psnr",
                                  "--out", str(tmp_path / "r.parquet"), "--no-progress", "--no-cache"])
    assert scored.exit_code == 0
    import pandas as pd

    table = pd.read_parquet(tmp_path / "r.parquet")
    assert set(table["status"]) == {"bad_output"} and table["reason"].str.contains("above the limit").all()
    monkeypatch.setenv("FSMI_MAX_IMAGE_PIXELS", "many")
    result = runner.invoke(main, ["show", str(pristine), "single_0001", "--out", str(tmp_path / "s.png")])
    _assert_clean_outcome(result, allowed_to_succeed=False)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_results_folder_is_one_line_and_keeps_the_old_table(pristine, tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--method", "identity", "--bench", str(pristine), "--out", str(run),
                                "--no-progress"]).exit_code == 0
    folder = tmp_path / "results"
    arguments = ["score", "--bench", str(pristine), "--run", str(run), "--metrics", "bg_psnr", "--out",
                 str(folder / "r.parquet"), "--no-progress"]
    assert runner.invoke(main, arguments).exit_code == 0
    before = (folder / "r.parquet").read_bytes()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = runner.invoke(main, arguments)
    finally:
        folder.chmod(stat.S_IRWXU)
    _assert_clean_outcome(result, allowed_to_succeed=False)
    assert (folder / "r.parquet").read_bytes() == before


def test_a_file_where_the_output_folder_should_be_is_one_line(pristine, tmp_path):
    (tmp_path / "file").write_text("")
    for arguments in (["run", "--method", "identity", "--bench", str(pristine), "--out", str(tmp_path / "file"),
                       "--no-progress"],
                      ["show", str(pristine), "single_0001", "--out", str(tmp_path / "file" / "x.png")]):
        result = CliRunner().invoke(main, arguments)
        _assert_clean_outcome(result, allowed_to_succeed=False)


def test_new_files_honour_the_umask(tmp_path):
    from fsmi_bench.io import atomic_write_text

    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
