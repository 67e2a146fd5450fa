"""`fsmi import-outputs` then `fsmi score` and `fsmi report`, as a user types them."""

from __future__ import annotations

from click.testing import CliRunner

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.cli import main
from fsmi_bench.io import load_rgb, save_png
from tests.support.run_fixtures import make_benchmark


def test_import_score_and_report_beside_a_method_run_here(tmp_path):
    bench = make_benchmark(tmp_path / "bench", n_single=1, n_multi=1)
    benchmark = load_benchmark(bench)
    for row in benchmark.rows:  # "their" method: the GT for multi-image cases, the scene otherwise
        image = load_rgb(benchmark.path(row.gt if row.kind == "multi" else row.scene))
        save_png(tmp_path / "theirs" / row.case_id / f"{row.mask_type}.png", image)
    runner = CliRunner()
    imported = runner.invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "theirs"),
                                    "--method-name", "oracle", "--out", str(tmp_path / "runs/oracle"),
                                    "--no-progress"])
    assert imported.exit_code == 0, imported.output
    assert f"{len(benchmark.rows)} of {len(benchmark.rows)} outputs imported" in imported.output
    ran = runner.invoke(main, ["run", "--method", "identity", "--bench", str(bench),
                               "--out", str(tmp_path / "runs/identity"), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    for name in ("oracle", "identity"):
        scored = runner.invoke(main, ["score", "--bench", str(bench), "--run", str(tmp_path / "runs" / name),
                                      "--metrics", "bg_psnr,fg_psnr,whole_psnr",
                                      "--out", str(tmp_path / "results" / f"{name}.parquet")])
        assert scored.exit_code == 0, scored.output
    report = runner.invoke(main, ["report", str(tmp_path / "results/oracle.parquet"),
                                  str(tmp_path / "results/identity.parquet"), "--markdown"])
    assert report.exit_code == 0, report.output
    assert "oracle" in report.output and "identity" in report.output
    # The oracle's multi-image PSNR is the cap (identical to GT); identity's is finite.
    assert "100.00" in report.output or "100.0" in report.output


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bench = make_benchmark(tmp_path / "bench", n_single=1, n_multi=0)
    result = CliRunner().invoke(main, ["import-outputs", "--bench", str(bench), "--from", str(tmp_path / "nowhere"),
                                       "--method-name", "x", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: --from {tmp_path / 'nowhere'}: no such folder or file"]
