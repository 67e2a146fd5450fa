"""`fsmi export --format hf`: round trip through `load_hf_disk`, refusals, integrity, the CLI command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fsmi_bench.benchmark.export import export_hf
from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.benchmark.sources.hf_disk import load_hf_disk
from fsmi_bench.errors import BadInputError, IntegrityError
from fsmi_bench.io import load_mask, load_rgb
from tests.support.tiny_benchmark import write_tiny_benchmark


@pytest.fixture
def bench(tmp_path):
    return write_tiny_benchmark(tmp_path / "bench", n_single=2, n_multi=2)


def test_round_trip_is_pixel_identical(bench, tmp_path):
    summary = export_hf(bench, tmp_path / "out", progress=False)
    assert (summary.cases, summary.mask_conditions) == (4, 36)
    benchmark = load_benchmark(bench)
    assert summary.manifest_sha256 == benchmark.manifest_sha256
    content = load_hf_disk(str(tmp_path / "out"))
    assert [case.case_id for case in content.cases] == benchmark.case_ids()
    assert content.card.startswith("# Tiny test benchmark")
    for case in content.cases:
        rows = {row.mask_type: row for row in benchmark.rows_for(case.case_id)}
        first = rows["full"]
        assert (case.kind, case.op, case.scenario, case.complexity, case.instruction, case.label, case.clip_text) == (
            first.kind, first.op, first.scenario, first.complexity, first.instruction, first.label, first.clip_text)
        np.testing.assert_array_equal(case.scene, load_rgb(bench / first.scene))
        np.testing.assert_array_equal(case.gt, load_rgb(bench / first.gt))
        np.testing.assert_array_equal(case.region, load_mask(bench / first.region))
        assert case.region.dtype == bool and case.scene.dtype == np.uint8
        if case.kind == "multi":
            np.testing.assert_array_equal(case.subject, load_rgb(bench / first.subject))
        else:
            assert case.subject is None
        assert set(case.masks) == set(rows)
        for mask_type, row in rows.items():
            np.testing.assert_array_equal(case.masks[mask_type], load_mask(bench / row.mask))
        assert json.loads(case.origin) == first.origins


def test_exported_columns_and_mask_metadata(bench, tmp_path):
    import datasets

    export_hf(bench, tmp_path / "out", progress=False)
    dataset = datasets.load_from_disk(str(tmp_path / "out")).cast_column("scene", datasets.Image(decode=False))
    assert dataset.column_names[:4] == ["case_id", "kind", "op", "scenario"]
    assert {f"mask_{name}" for name in ("full", "circle_open", "irregular_open")} <= set(dataset.column_names)
    row = dataset[0]
    benchmark = load_benchmark(bench)
    rows = {r.mask_type: r for r in benchmark.rows_for(row["case_id"])}
    # image cells hold the benchmark's PNG bytes unchanged, so sha256 survives too
    from fsmi_bench.io import sha256_bytes

    assert sha256_bytes(row["scene"]["bytes"]) == rows["full"].scene_sha256
    assert json.loads(row["mask_params"]) == {t: r.mask_params for t, r in rows.items()}
    assert json.loads(row["mask_stats"])["circle"] == {"iou": rows["circle"].mask_iou,
                                                       "coverage": rows["circle"].mask_coverage}
    assert (row["seed"], row["width"], row["height"]) == (rows["full"].seed, 40, 30)


def test_partial_mask_conditions_leave_empty_cells(tmp_path):
    bench = write_tiny_benchmark(tmp_path / "bench", n_single=1, n_multi=1, mask_types=("full", "triangle"))
    export_hf(bench, tmp_path / "out", progress=False)
    for case in load_hf_disk(str(tmp_path / "out")).cases:
        assert set(case.masks) == {"full", "triangle"}


def test_refuses_non_empty_out_unless_overwrite(bench, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    export_hf(bench, out, progress=False)  # an empty folder is fine
    (out / "keep.txt").write_text("user data")
    with pytest.raises(BadInputError, match="not empty; choose another --out or pass --overwrite"):
        export_hf(bench, out, progress=False)
    assert (out / "keep.txt").exists()
    export_hf(bench, out, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and len(load_hf_disk(str(out)).cases) == 4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bench", "out"]  # no staging folders left


def test_refuses_benchmark_whose_files_changed(bench, tmp_path):
    gt = bench / "cases" / "single_0001" / "gt.png"
    from fsmi_bench.io import save_png

    save_png(gt, np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(IntegrityError, match="gt.png no longer matches the sha256"):
        export_hf(bench, tmp_path / "out", progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bench"]


def test_refuses_out_inside_benchmark_and_missing_benchmark(bench, tmp_path):
    with pytest.raises(BadInputError, match="must not be inside the benchmark"):
        export_hf(bench, bench / "export", progress=False)
    with pytest.raises(BadInputError, match="holds the benchmark"):
        export_hf(bench, tmp_path, overwrite=True, progress=False)
    with pytest.raises(BadInputError, match="not a benchmark folder"):
        export_hf(tmp_path / "nothing", tmp_path / "out", progress=False)


def test_loader_validates_exported_cases(bench, tmp_path):
    import datasets

    export_hf(bench, tmp_path / "out", progress=False)
    dataset = datasets.load_from_disk(str(tmp_path / "out"))
    dataset.map(lambda row: {"op": "insert" if row["case_id"] == "multi_0002" else row["op"]}).save_to_disk(
        str(tmp_path / "edited"))
    with pytest.raises(BadInputError, match="case 'multi_0002': unknown op 'insert'"):
        load_hf_disk(str(tmp_path / "edited"))


def test_cli_command(bench, tmp_path):
    from click.testing import CliRunner

    from fsmi_bench.cli import main
    from fsmi_bench.cli.export import command as export_command

    assert main.commands["export"] is export_command
    runner = CliRunner()
    result = runner.invoke(export_command, [str(bench), "--format", "hf", "--out", str(tmp_path / "out"),
                                            "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 cases (36 masks" in result.output
    again = runner.invoke(export_command, [str(bench), "--out", str(tmp_path / "out")])
    assert isinstance(again.exception, BadInputError)
    assert "fsmi export bench --format hf --out bench-hf" in runner.invoke(export_command, ["--help"]).output
    assert runner.invoke(export_command, [str(bench), "--format", "zip", "--out", "x"]).exit_code == 2


def test_cli_module_imports_no_heavy_library():
    code = ("import sys, fsmi_bench.cli; "
            "heavy = [m for m in ('numpy', 'torch', 'PIL', 'pandas', 'datasets') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": ":".join(sys.path)})
