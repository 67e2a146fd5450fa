"""A manifest is validated as a whole when loaded: row shape and types, safe names, unique rows, one case per
id, a known benchmark version. Every problem is one ``BadInputError`` naming the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsmi_bench.benchmark.manifest import MANIFEST_NAME, load_benchmark
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import check_path_part
from tests.support.tiny_benchmark import write_tiny_benchmark


@pytest.fixture
def cli():
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_tiny_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=1,
                                mask_types=("full", "circle"))


def _rows(bench: Path) -> list:
    return [json.loads(line) for line in (bench / MANIFEST_NAME).read_text().splitlines()]


def _with_rows(tmp_path: Path, pristine: Path, rows: list) -> Path:
    import shutil

    copy = tmp_path / "bench"
    shutil.copytree(pristine, copy)
    (copy / MANIFEST_NAME).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return copy


def _edit(row: dict, **changes) -> dict:
    return {**row, **changes}


MUTATIONS = {
    "case id climbs out": (lambda rows: [_edit(rows[0], case_id="../../x")] + rows[1:], "case_id '../../x'"),
    "case id absolute": (lambda rows: [_edit(rows[0], case_id="/tmp/x")] + rows[1:], "case_id '/tmp/x'"),
    "case id with a trailing newline": (lambda rows: [_edit(rows[0], case_id="single_0001\n")] + rows[1:],
                                        "case_id"),
    "mask type climbs out": (lambda rows: [_edit(rows[0], mask_type="../../x")] + rows[1:], "mask_type '../../x'"),
    "mask type hidden": (lambda rows: [_edit(rows[0], mask_type=".hidden")] + rows[1:], "mask_type '.hidden'"),
    "row not an object": (lambda rows: [[1, 2]] + rows[1:], "must be a JSON object"),
    "row a string": (lambda rows: ["full"] + rows[1:], "must be a JSON object"),
    "width a string": (lambda rows: [_edit(rows[0], width="40")] + rows[1:], "width must be an integer"),
    "seed a bool": (lambda rows: [_edit(rows[0], seed=True)] + rows[1:], "seed must be an integer"),
    "iou out of range": (lambda rows: [_edit(rows[0], mask_iou=7.0)] + rows[1:], "mask_iou must be a number"),
    "instruction a list": (lambda rows: [_edit(rows[0], instruction=["a"])] + rows[1:], "instruction must be a str"),
    "mask_params a list": (lambda rows: [_edit(rows[0], mask_params=[])] + rows[1:], "mask_params must be a JSON"),
    "bad sha256": (lambda rows: [_edit(rows[0], mask_sha256="abc")] + rows[1:], "mask_sha256 must be 64"),
    "unknown kind": (lambda rows: [_edit(rows[0], kind="triple")] + rows[1:], "kind 'triple'"),
    "path with a null byte": (lambda rows: [_edit(rows[0], mask="cases/a\x00b.png")] + rows[1:], "manifest path"),
    "duplicated row": (lambda rows: rows + [rows[0]], "two rows for case single_0001, mask type full"),
    "two cases share an id": (lambda rows: [_edit(row, case_id="single_0001") if row["case_id"] == "single_0002"
                                            else row for row in rows], "two cases share one id"),
    "unknown benchmark version": (lambda rows: [_edit(row, benchmark_version="fsmi-edit-9.0") for row in rows],
                                  "benchmark version 'fsmi-edit-9.0' is not one this fsmi reads"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_bad_manifest_is_one_error_naming_the_row(pristine, tmp_path, name):
    mutate, expected = MUTATIONS[name]
    bench = _with_rows(tmp_path, pristine, mutate(_rows(pristine)))
    with pytest.raises(BadInputError) as caught:
        load_benchmark(bench, verify=False)
    message = str(caught.value)
    assert expected in message, message
    assert MANIFEST_NAME in message


def test_the_pristine_manifest_loads(pristine):
    benchmark = load_benchmark(pristine, verify=True)
    assert len(benchmark.rows) == 6 and benchmark.case_ids() == ["multi_0001", "single_0001", "single_0002"]


@pytest.mark.parametrize("name", ["single_0001", "a", "case-7.b_2", "X" * 128])
def test_safe_names_pass(name):
    assert check_path_part(name, "case_id") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "x\n", "\nx", "-x", "_x", "X" * 129,
                                  "a b", 7, None])
def test_unsafe_names_are_refused(name):
    with pytest.raises(BadInputError):
        check_path_part(name, "case_id")


def test_run_refuses_a_case_id_that_leaves_the_run_folder(cli, pristine, tmp_path):
    """The case id became a path part unchecked: `fsmi run` wrote outside its folder. Now: exit 2, nothing written."""
    rows = _rows(pristine)
    bench = _with_rows(tmp_path, pristine, [_edit(row, case_id="../../escaped") if row["case_id"] == "single_0001"
                                            else row for row in rows])
    result = cli("run", "--method", "identity", "--bench", bench, "--out", tmp_path / "a" / "b" / "run",
                 "--no-progress")
    assert result.exit_code == 2 and "case_id '../../escaped'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a").exists()


def test_a_chain_of_loads_reads_each_file_once_and_still_sees_changes(pristine, tmp_path, monkeypatch):
    """Inside ``verify_each_file_once`` (fsmi quickstart) an unchanged benchmark is read and hashed once; a file
    or a manifest changed in between is seen at the next load, as outside it."""
    import shutil

    import fsmi_bench.benchmark.manifest as manifest_module
    from fsmi_bench.benchmark.manifest import verify_each_file_once
    from fsmi_bench.errors import IntegrityError

    bench = tmp_path / "bench"
    shutil.copytree(pristine, bench)
    hashed = []
    real = manifest_module.sha256_file
    monkeypatch.setattr(manifest_module, "sha256_file", lambda path: hashed.append(path) or real(path))
    with verify_each_file_once():
        first = load_benchmark(bench)
        count = len(hashed)
        again = load_benchmark(bench)
        assert len(hashed) == count > 0 and again.rows == first.rows and again.manifest_sha256 == first.manifest_sha256
        scene = bench / first.rows[0].scene
        scene.write_bytes(scene.read_bytes() + b"\0")  # a changed file: hashed again, and refused
        with pytest.raises(IntegrityError, match="no longer matches"):
            load_benchmark(bench)
    rows = [json.loads(line) for line in (bench / MANIFEST_NAME).read_text().splitlines()]
    with verify_each_file_once():
        assert load_benchmark(bench, verify=False).rows[0].instruction == rows[0]["instruction"]
        for row in rows:
            if row["case_id"] == rows[0]["case_id"]:
                row["instruction"] = "a new instruction"
        (bench / MANIFEST_NAME).write_text("".join(json.dumps(row) + "\n" for row in rows))
        assert load_benchmark(bench, verify=False).rows[0].instruction == "a new instruction"
