"""fsmi compare: identical results pass; a moved value, a missing or new cell, a version or protocol
change fail with exit code 1 and a per-cell diff; bad baselines are one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.cli.compare import command as compare_command
from fsmi_bench.errors import BadInputError
from fsmi_bench.report.compare import compare_with_baseline
from fsmi_bench.report.make_report import ReportConfig, make_report
from tests.support.results_tables import results_frame, write_results


@pytest.fixture()
def baseline(tmp_path):
    frame = pd.concat([results_frame("alpha", 0.0, cases=3, noise=0.3), results_frame("beta", 1.0, cases=3)])
    results = write_results(tmp_path, frame, "results")
    board = tmp_path / "board.csv"
    make_report(ReportConfig(results=(str(results),), leaderboard=str(board), resamples=200, seed=5,
                            command="fsmi report results.parquet --leaderboard board.csv"))
    return frame, results, board


def test_leaderboard_has_provenance_header(baseline):
    _, results, board = baseline
    header = [line for line in board.read_text().splitlines() if line.startswith("#")]
    keys = [line[2:].split(":")[0] for line in header]
    assert keys == ["table", "git_commit", "fsmi_version", "benchmark_version", "protocol", "command", "bootstrap",
                    "input"]
    assert "# benchmark_version: fsmi-edit-1.0" in header and "# protocol: paper" in header
    assert "# bootstrap: resamples=200 seed=5" in header
    assert header[-1].endswith(str(results)) and len(header[-1].split()[2]) == 64


def test_identical_results_pass(baseline):
    _, results, board = baseline
    comparison = compare_with_baseline([results], board)
    assert comparison.ok and not comparison.differences
    assert comparison.text().startswith(f"OK: all {comparison.cells_compared} cells match")
    result = CliRunner().invoke(compare_command, [str(results), "--baseline", str(board)])
    assert result.exit_code == 0, result.output


def test_lost_outputs_fail_and_older_leaderboards_without_output_counts_still_compare(tmp_path, baseline):
    frame, results, board = baseline
    # A case that loses one mask output keeps its n (it still has a value) but not its output count.
    lost = frame.copy()
    rows = (lost["method"] == "alpha") & (lost["case_id"] == "multi_0001") & (lost["mask_type"] == "circle")
    lost.loc[rows, ["status", "reason"]] = ["failed_case", "timeout"]
    lost.loc[rows, "value"] = float("nan")
    comparison = compare_with_baseline([write_results(tmp_path, lost, "lost")], board)
    fields = {diff.field for diff in comparison.differences if diff.metric == "fg_psnr" and diff.group == "free_shape"}
    assert not comparison.ok and "n_outputs" in fields and "n" not in fields
    # A leaderboard written before outputs were counted: the other columns are still compared.
    lines = board.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = pd.read_csv(board, comment="#").drop(columns=["n_outputs", "n_outputs_total"])
    older = tmp_path / "older.csv"
    older.write_text("\n".join(header) + "\n" + body.to_csv(index=False))
    assert compare_with_baseline([results], older).ok


def test_moved_value_fails_with_per_cell_diff(tmp_path, baseline):
    frame, _, board = baseline
    moved = frame.copy()
    target = (moved["method"] == "beta") & (moved["metric"] == "bg_ssim") & (moved["mask_type"] == "circle") \
        & (moved["case_id"] == "single_0002")
    moved.loc[target, "value"] += 0.9
    path = write_results(tmp_path, moved, "moved")
    result = CliRunner().invoke(compare_command, [str(path), "--baseline", str(board)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "method | source | kind | group | metric | field | baseline | now | delta" in result.output
    # 9 mask types pooled in "all", 1 case of 3: the mean moves by 0.9 / 9 / 3.
    assert "beta | measured | single | circle | bg_ssim | mean |" in result.output
    line = next(line for line in result.output.splitlines() if "| single | all | bg_ssim | mean |" in line)
    assert float(line.split("|")[-1]) == pytest.approx(0.9 / 9 / 3)
    # Groups the change does not touch stay silent.
    assert "| full | bg_ssim |" not in result.output
    # Within tolerance passes.
    assert compare_with_baseline([path], board, tol=1.0).ok


def test_missing_and_new_cells_fail(tmp_path, baseline):
    frame, _, board = baseline
    fewer = write_results(tmp_path, frame[frame["metric"] != "whole_lpips"], "fewer")
    comparison = compare_with_baseline([fewer], board)
    assert not comparison.ok
    assert {diff.field for diff in comparison.differences} == {"cell"}
    assert {(diff.metric, diff.now) for diff in comparison.differences} == {("whole_lpips", "missing")}
    extra = pd.concat([frame, results_frame("gamma", 2.0, cases=3, kinds=("single",))])
    comparison = compare_with_baseline([write_results(tmp_path, extra, "extra")], board)
    assert not comparison.ok and {diff.method for diff in comparison.differences} == {"gamma"}
    assert all(diff.baseline == "missing" for diff in comparison.differences)
    # A case turning into a failure changes n, even where the mean would not move.
    failed = frame.copy()
    rows = (failed["case_id"] == "multi_0001") & (failed["method"] == "alpha")
    failed.loc[rows, ["status", "reason"]] = ["failed_case", "CUDA out of memory"]
    failed.loc[rows, "value"] = float("nan")
    comparison = compare_with_baseline([write_results(tmp_path, failed, "failed")], board)
    assert any(diff.field == "n" and diff.baseline == 3.0 and diff.now == 2.0 for diff in comparison.differences)


def test_version_or_protocol_change_fails(tmp_path, baseline):
    frame, _, board = baseline
    for column, value, words in (("benchmark_version", "fsmi-edit-2.0", "benchmark version differs"),
                                 ("protocol", "strict", "protocol differs")):
        changed = frame.copy()
        changed[column] = value
        path = write_results(tmp_path, changed, f"changed_{column}")
        if column == "protocol":
            result = CliRunner().invoke(compare_command, [str(path), "--baseline", str(board)])
            assert result.exit_code == 1 and words in result.output
            continue
        comparison = compare_with_baseline([path], board)
        assert not comparison.ok and any(words in problem for problem in comparison.problems)
        # Every value is the same; each cell names its version difference.
        assert {(diff.field, diff.baseline, diff.now) for diff in comparison.differences} == {
            ("benchmark_version", "fsmi-edit-1.0", "fsmi-edit-2.0")}
        assert len(comparison.differences) == comparison.cells_compared


def test_bad_baseline_and_results_are_errors(tmp_path, baseline):
    _, results, board = baseline
    with pytest.raises(BadInputError, match="baseline leaderboard not found"):
        compare_with_baseline([results], tmp_path / "absent.csv")
    with pytest.raises(BadInputError, match="is not a leaderboard"):
        compare_with_baseline([results], results.with_suffix(".parquet"))
    with pytest.raises(BadInputError, match="not a results table"):
        compare_with_baseline([board], board)
    with pytest.raises(BadInputError, match="non-negative"):
        compare_with_baseline([results], board, tol=-1)


def test_cells_missing_on_both_sides_are_not_differences(tmp_path, baseline):
    frame, _, board = baseline
    # Now the results also hold a metric without weights: its cells are new but hold no value.
    lost = results_frame("alpha", 0.0, cases=3, kinds=("single",))
    lost = lost[lost["metric"] == "bg_ssim"].assign(metric="bg_dists", status="missing_weights",
                                                   reason="DISTS weights not found", value=float("nan"))
    path = write_results(tmp_path, pd.concat([frame, lost]), "with_missing")
    comparison = compare_with_baseline([path], board)
    assert comparison.ok, comparison.text()
    assert comparison.missing_both == (("single", "bg_dists"),) and comparison.missing_both_cells > 0
    assert "cells missing on both sides" in comparison.text() and "single bg_dists" in comparison.text()


def test_metric_spec_protocol_and_version_are_compared_per_cell(tmp_path, baseline):
    import json

    frame, _, board = baseline
    changed = frame.copy()
    target = changed["metric"] == "fg_psnr"
    changed.loc[target, "metric_spec"] = json.dumps({"model": "none", "region_mode": "masked", "input_size": 256})
    comparison = compare_with_baseline([write_results(tmp_path, changed, "spec")], board)
    assert not comparison.ok
    fields = {(diff.metric, diff.field, diff.baseline, diff.now) for diff in comparison.differences}
    assert fields == {("fg_psnr", "metric_spec.region_mode", '"bbox_crop"', '"masked"')}
    assert "| fg_psnr | metric_spec.region_mode | \"bbox_crop\" | \"masked\" |" in comparison.text()
    # --metrics leaves the changed metric out, and the rest matches.
    assert compare_with_baseline([write_results(tmp_path, changed, "spec2")], board,
                                 metrics=("bg_psnr", "whole_psnr")).ok
    from fsmi_bench.cli import main

    result = CliRunner().invoke(main, ["compare", str(tmp_path / "spec2.parquet"), "--baseline", str(board),
                                       "--metrics", "bg_psnr,fg_psnrr"])
    assert result.exit_code == 2 and "fg_psnrr neither in the baseline nor in the results" in result.output


def test_duplicated_baseline_rows_are_refused(tmp_path, baseline):
    _, results, board = baseline
    lines = board.read_text().splitlines(keepends=True)
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("".join(lines + [lines[-1]]))
    with pytest.raises(BadInputError, match="rows share a cell"):
        compare_with_baseline([results], doubled)
