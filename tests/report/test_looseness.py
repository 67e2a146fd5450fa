"""Scores against mask looseness: bins by mask IoU and coverage, the drop from the full mask, the slope
against IoU, on results whose IoUs and values are known, and end to end from a benchmark's manifest."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.looseness import SLOPE_STEP, Binning, bin_cells, robustness_cells
from fsmi_bench.report.make_report import ReportConfig, make_report
from fsmi_bench.schema import FREE_SHAPE_TYPES, MASK_CONDITIONS
from tests.support.results_tables import write_results

# Free-shape mask j of case c has IoU 0.32 + 0.06 j + 0.01 c (c = 0..5): bins below 0.4 ... from 0.7 up.
CASES = 6
SLOPES = {"steady": 0.0, "tight-lover": 20.0}  # fg_psnr per unit of IoU
FULL_BONUS = {"steady": 0.5, "tight-lover": 3.0}


def shape_iou(case: int, mask_index: int) -> float:
    return 1.0 if mask_index == 0 else 0.32 + 0.06 * (mask_index - 1) + 0.01 * case


def known_frame() -> pd.DataFrame:
    """fg_psnr = 10 + 2 c + slope * IoU on free-shape masks (case c's intercept grows with its IoUs, so that a
    fit across cases would see a steeper slope than the one inside each case), and the full mask gets
    10 + 2 c + slope * 0.9 + bonus."""
    rows = []
    for method, slope in SLOPES.items():
        for case in range(CASES):
            for mask_index, mask_type in enumerate(MASK_CONDITIONS):
                iou = shape_iou(case, mask_index)
                value = 10 + 2 * case + (slope * 0.9 + FULL_BONUS[method] if mask_index == 0 else slope * iou)
                rows.append({"method": method, "case_id": f"multi_{case:04d}", "kind": "multi", "op": "add",
                             "scenario": "indoor", "complexity": "simple", "mask_type": mask_type, "shape_iou": iou,
                             "shape_coverage": 1.0 if mask_index == 0 else 0.5 + 0.06 * mask_index,
                             "metric": "fg_psnr", "value": value, "status": "ok", "reason": "",
                             "higher_is_better": True, "metric_spec": "{}", "protocol": "paper",
                             "benchmark_version": "v", "manifest_sha256": "0" * 64,
                             "run_provenance": json.dumps({"method": method})})
    return pd.DataFrame(rows)


def plain_bin(value: float, edges) -> int:
    return sum(value >= edge for edge in edges)


def test_bins_means_drop_and_slope_on_known_values():
    frame = known_frame()
    edges = (0.4, 0.5, 0.6, 0.7)
    cells = bin_cells(frame, Binning("shape_iou", "IoU", edges), resamples=200, seed=0).set_index(
        ["method", "bin"])
    assert sorted(set(cells.index.get_level_values("bin"))) == [0, 1, 2, 3, 4, 5]  # 5 bins, then the full mask
    for method, slope in SLOPES.items():
        for bin_index in range(5):
            # a case's value in a bin is the mean over its masks there, then the mean over cases
            per_case = {}
            for case in range(CASES):
                values = [10 + 2 * case + slope * shape_iou(case, j) for j in range(1, 9)
                          if plain_bin(shape_iou(case, j), edges) == bin_index]
                if values:
                    per_case[case] = sum(values) / len(values)
            cell = cells.loc[(method, bin_index)]
            assert cell["n"] == len(per_case)
            assert cell["mean"] == pytest.approx(sum(per_case.values()) / len(per_case))
            assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
            lower, upper = (0.0,) + edges, edges + (1.0,)
            assert lower[bin_index] <= cell["x"] < upper[bin_index]  # x: the bin's mean IoU
        full = cells.loc[(method, 5)]
        assert full["x"] == 1.0 and full["n"] == CASES
        assert full["mean"] == pytest.approx(np.mean([10 + 2 * c + slope * 0.9 + FULL_BONUS[method]
                                                      for c in range(CASES)]))
    robust = robustness_cells(frame, resamples=200, seed=0).set_index(["method", "measure"])
    for method, slope in SLOPES.items():
        # every case has the same slope inside it, so every resample of cases gives exactly that slope
        cell = robust.loc[(method, "slope")]
        assert cell["mean"] == pytest.approx(slope * SLOPE_STEP, abs=1e-9) and cell["n"] == CASES
        assert cell["ci_low"] == pytest.approx(cell["mean"]) and cell["ci_high"] == pytest.approx(cell["mean"])
        drops = [slope * 0.9 + FULL_BONUS[method] - np.mean([slope * shape_iou(c, j) for j in range(1, 9)])
                 for c in range(CASES)]
        assert robust.loc[(method, "drop"), "mean"] == pytest.approx(np.mean(drops))
    # A fit across cases would see the intercepts' climb (2 per 0.01 of IoU) as a slope; the one inside cases
    # does not: "steady" is flat.
    pooled = np.polyfit(frame.loc[(frame["method"] == "steady") & (frame["mask_type"] != "full"), "shape_iou"],
                        frame.loc[(frame["method"] == "steady") & (frame["mask_type"] != "full"), "value"], 1)[0]
    assert pooled > 2 and robust.loc[("steady", "slope"), "mean"] == pytest.approx(0.0, abs=1e-9)


def test_report_shows_them_in_markdown_csv_and_latex(tmp_path):
    path = write_results(tmp_path, known_frame(), "known")
    csv = make_report(ReportConfig(results=(str(path),), fmt="csv", resamples=100)).text
    cells = pd.read_csv(io.StringIO(csv))
    robust = cells[cells["table"] == "Multi-image robustness to loose masks"].set_index(["block", "method"])
    assert robust.loc[("Slope per +0.1 IoU", "tight-lover"), "mean"] == pytest.approx(2.0)
    assert robust.loc[("Slope per +0.1 IoU", "steady"), "mean"] == pytest.approx(0.0, abs=1e-9)
    by_iou = cells[cells["table"] == "Multi-image editing by mask IoU"]
    assert list(dict.fromkeys(by_iou["block"])) == ["IoU < 0.4", "IoU 0.4-0.5", "IoU 0.5-0.6", "IoU 0.6-0.7",
                                                   "IoU ≥ 0.7", "full mask (IoU 1)"]
    by_coverage = cells[cells["table"] == "Multi-image editing by mask coverage"]
    assert list(dict.fromkeys(by_coverage["block"]))[-1] == "full mask (coverage 1)"
    markdown = make_report(ReportConfig(results=(str(path),), resamples=100, decimals=2)).text
    assert "### Multi-image robustness to loose masks" in markdown
    assert "| Slope per +0.1 IoU | steady | 0.00 [0.00, 0.00] n=6 |" in markdown
    assert "| IoU < 0.4 |" in markdown and "&lt;" not in markdown
    latex = make_report(ReportConfig(results=(str(path),), resamples=100, fmt="latex")).text
    assert "IoU \\textless{} 0.4" in latex and "Slope per +0.1 IoU" in latex


def test_custom_bins_plot_and_old_tables(tmp_path):
    path = write_results(tmp_path, known_frame(), "known")
    result = make_report(ReportConfig(results=(str(path),), fmt="csv", resamples=50, iou_bins=(0.5,),
                                      plots_dir=str(tmp_path / "plots")))
    blocks = pd.read_csv(io.StringIO(result.text)).query("table == 'Multi-image editing by mask IoU'")["block"]
    assert list(dict.fromkeys(blocks)) == ["IoU < 0.5", "IoU ≥ 0.5", "full mask (IoU 1)"]
    assert tmp_path / "plots" / "multi_by_mask_iou.png" in result.files
    assert (tmp_path / "plots" / "multi_by_mask_iou.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(BadInputError, match="--iou-bins 0.6,0.5: give increasing edges"):
        make_report(ReportConfig(results=(str(path),), iou_bins=(0.6, 0.5)))
    old = write_results(tmp_path, known_frame().drop(columns=["shape_iou", "shape_coverage"]), "old")
    result = make_report(ReportConfig(results=(str(old),), resamples=20))
    assert "Table 1" in result.text and "robustness" not in result.text
    assert any("no tables by mask IoU" in message and "score the run again" in message
               for message in result.messages)


def test_end_to_end_from_a_benchmark_with_known_ious(tmp_path):
    """The IoUs come from the manifest (an _open outline's filled shape), through `fsmi score`, into the bins."""
    import fsmi_bench as fsmi
    from fsmi_bench.benchmark.manifest import MANIFEST_NAME, load_benchmark
    from fsmi_bench.io import read_jsonl, write_jsonl
    from tests.support.tiny_benchmark import write_tiny_benchmark

    bench = write_tiny_benchmark(tmp_path / "bench", n_single=2, n_multi=3, width=40, height=30)
    rows = list(read_jsonl(bench / MANIFEST_NAME))
    for row in rows:  # _open outlines as the builder records them: the enclosed shape's IoU and coverage
        if row["mask_type"].endswith("_open"):
            row["mask_params"] = {"filled_iou": 0.45, "filled_coverage": 0.8, "shift": row["mask_params"]["shift"]}
    rows[-1]["mask_params"] = {}  # a hand-drawn outline: its enclosed area is unknown
    write_jsonl(bench / MANIFEST_NAME, rows)
    benchmark = load_benchmark(bench)

    class DarkenMask(fsmi.Method):
        name = "darken-mask"

        def edit(self, request):
            image = request.scene.copy()
            image[request.mask] //= 2
            return image

    run = fsmi.run_method(DarkenMask(), bench, out=tmp_path / "run", progress=False)
    table = fsmi.score(run, bench, metrics=["bg_psnr", "fg_psnr", "whole_psnr"], progress=False)
    expected = {(row.case_id, row.mask_type): row.shape_overlap for row in benchmark.rows}
    for row in table.itertuples():
        iou, coverage = expected[(row.case_id, row.mask_type)]
        assert (row.shape_iou, row.shape_coverage) == pytest.approx((iou, coverage), nan_ok=True)
    assert (table.loc[table["mask_type"].str.endswith("_open"), "shape_iou"].dropna() == 0.45).all()
    assert table.loc[(table["case_id"] == rows[-1]["case_id"]) & (table["mask_type"] == rows[-1]["mask_type"]),
                     "shape_iou"].isna().all()
    cells = pd.read_csv(io.StringIO(fsmi.make_report(table, fmt="csv", resamples=50).text))
    by_iou = cells[(cells["table"] == "Multi-image editing by mask IoU") & (cells["metric"] == "whole_psnr")]
    # the same cells by plain loops over the results rows
    multi = table[(table["kind"] == "multi") & (table["metric"] == "whole_psnr") & (table["status"] == "ok")]
    edges = (0.4, 0.5, 0.6, 0.7)
    labels = ["IoU < 0.4", "IoU 0.4-0.5", "IoU 0.5-0.6", "IoU 0.6-0.7", "IoU ≥ 0.7"]
    for index, label in enumerate(labels + ["full mask (IoU 1)"]):
        per_case = {}
        for row in multi.itertuples():
            if row.mask_type == "full":
                in_bin = index == len(labels)
            else:
                in_bin = not np.isnan(row.shape_iou) and plain_bin(row.shape_iou, edges) == index
            if in_bin:
                per_case.setdefault(row.case_id, []).append(row.value)
        cell = by_iou[by_iou["block"] == label]
        if not per_case:
            assert cell["mean"].isna().all()
            continue
        assert cell["n"].iloc[0] == len(per_case)
        assert cell["mean"].iloc[0] == pytest.approx(np.mean([np.mean(values) for values in per_case.values()]))
    assert set(FREE_SHAPE_TYPES) <= set(table["mask_type"])
