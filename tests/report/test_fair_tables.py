"""Tables compare methods on the same cases, mark reference floors, take --methods/--metrics/--decimals,
keep local paths out, escape every text for its format; paired tests correct for many rows; plots show
categories as points and skip what has no value."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.report.aggregate import common_cases
from fsmi_bench.report.make_report import ReportConfig, make_report
from fsmi_bench.report.paired import MIN_CASES_FOR_VERDICT, effect_size, holm_adjusted, paired_tests
from fsmi_bench.report.render import markdown_escape
from fsmi_bench.report.results_table import load_results
from fsmi_bench.report.notes import without_paths
from fsmi_bench.schema import MASK_CONDITIONS
from tests.support.results_tables import known_value, results_frame, write_results


def _table1_rows(text: str, wanted: str = "Full Mask") -> dict[str, list[str]]:
    """One block of Table 1 as {method label: [cell texts]} from Markdown."""
    section = text.split("### ")[1]
    rows, block = {}, None
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| Mask"):
            continue
        parts = [part.strip() for part in line.strip("|").split(" | ")]
        block = parts[0] or block
        if block == wanted:
            rows[parts[1]] = parts[2:]
    return rows


@pytest.fixture()
def unequal(tmp_path):
    """"small": 2 cases x 3 mask types, one case much harder; "wide": all 6 cases x 9 mask types."""
    wide = results_frame("wide", 0.0, cases=6, kinds=("multi",))
    small = results_frame("small", 0.5, cases=6, kinds=("multi",))
    small = small[small["case_id"].isin(["multi_0001", "multi_0002"])
                  & small["mask_type"].isin(["full", "circle", "irregular"])]
    return write_results(tmp_path, pd.concat([wide, small]), "unequal")


def test_common_cases_keeps_only_pairs_every_method_has(unequal):
    frame = load_results([unequal])
    shared, coverage = common_cases(frame)
    for method in ("wide", "small"):
        pairs = set(zip(*[shared.loc[(shared["method"] == method) & (shared["metric"] == "fg_psnr"), column]
                          for column in ("case_id", "mask_type")]))
        assert pairs == {(case, mask) for case in ("multi_0001", "multi_0002") for mask in ("full", "circle", "irregular")}
    by_method = {item.method: item for item in coverage if item.metric == "fg_psnr"}
    assert (by_method["wide"].valid, by_method["wide"].compared, by_method["wide"].total) == (54, 6, 54)
    assert (by_method["small"].valid, by_method["small"].compared, by_method["small"].total) == (6, 6, 6)


def test_tables_compare_same_cases_and_say_so(unequal):
    text = make_report(ReportConfig(results=(str(unequal),), resamples=50)).text
    rows = _table1_rows(text)
    # Both on cases 1-2 with the full mask: wide = mean(0, 1) = 0.5, small = 0.5 higher.
    assert rows["wide"][0].startswith("0.5000 [") and rows["wide"][0].endswith("n=2")
    assert rows["small"][0].startswith("**1.0000 [")
    assert "each column compares the 6 (case, mask type) pairs" in text
    assert "small 6 of 6; wide 54 of 54" in text
    # The free-shape block averages the same 2 mask types (circle, irregular) for both methods.
    free = _table1_rows(text, "Free-Shape Mask")["wide"][0].split(" ")[0]
    circle, irregular = MASK_CONDITIONS.index("circle"), MASK_CONDITIONS.index("irregular")
    expected = np.mean([known_value(0.0, case, mask, 0) for case in (0, 1) for mask in (circle, irregular)])
    assert float(free) == pytest.approx(expected, abs=1e-4)


def test_all_cases_marks_unequal_cells_and_bolds_nothing_there(unequal):
    text = make_report(ReportConfig(results=(str(unequal),), resamples=50, all_cases=True)).text
    rows = _table1_rows(text)
    assert rows["wide"][0].endswith("n=6†") and rows["small"][0].endswith("n=2†")
    assert "**" not in "".join(rows["wide"] + rows["small"])
    assert "--all-cases" in text and "Same cases for every method" not in text


def test_floors_are_marked_and_never_bold(tmp_path):
    frame = pd.concat([results_frame("identity", 5.0, kinds=("single",)), results_frame("alpha", 0.0, kinds=("single",)),
                       results_frame("beta", 1.0, kinds=("single",))])
    text = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "floors")),), resamples=50)).text
    table2 = text.split("### Table 2")[1].split("### ")[0]
    identity = next(line for line in table2.splitlines() if "| identity (floor) |" in line)
    assert "**" not in identity  # highest PSNR of all, still not bold: it is a floor
    beta = next(line for line in table2.splitlines() if "| beta |" in line)
    assert beta.split(" | ")[2].startswith("**")
    assert "Rows marked (floor) are reference baselines" in table2


def test_methods_metrics_and_decimals_options(tmp_path):
    frame = pd.concat([results_frame("alpha", 0.0), results_frame("beta", 1.0), results_frame("gamma", 2.0)])
    path = write_results(tmp_path, frame, "three")
    text = make_report(ReportConfig(results=(str(path),), resamples=50, methods=("gamma", "alpha"),
                                    metrics=("fg_psnr", "whole_lpips", "bg_ssim"), decimals=2)).text
    table1 = text.split("### ")[1]
    header = next(line for line in table1.splitlines() if line.startswith("| Mask"))
    assert header == "| Mask | Method | Foreground PSNR ↑ | Whole Image LPIPS ↓ |"
    labels = [line.split(" | ")[1] for line in table1.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert labels[:2] == ["gamma", "alpha"] and "beta" not in text
    assert "| Full Mask | gamma | **3.50 [" in table1  # 2 decimals, order kept
    assert "Bg SSIM" not in text and "Background SSIM ↑" in text.split("### Table 2")[1]
    for bad, words in ((("methods", ("alpah",)), "did you mean 'alpha'"), (("metrics", ("fg_psnrr",)), "fg_psnr")):
        with pytest.raises(BadInputError, match=words):
            make_report(ReportConfig(results=(str(path),), resamples=10, **{bad[0]: bad[1]}))
    result = CliRunner().invoke(main, ["report", str(path), "--methods", "alpha,zeta", "--resamples", "10"])
    assert result.exit_code == 2 and "'zeta' is not in the results" in result.output


def test_no_local_paths_in_tables_and_specs_file(tmp_path):
    frame = results_frame("alpha", 0.0, kinds=("single",))
    lost = frame["metric"] == "bg_lpips"
    frame.loc[lost, ["status", "reason"]] = ["missing_weights",
                                            "weights not found: /home/someone/.cache/torch/hub/checkpoints/alex.pth"]
    frame.loc[lost, "value"] = float("nan")
    frame["metric_spec"] = json.dumps({"model": "/home/someone/models/vit.pt", "region_mode": "masked", "size": None})
    specs = tmp_path / "specs.json"
    for fmt in ("markdown", "latex"):
        text = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "paths")),), fmt=fmt,
                                        resamples=10, specs_out=str(specs))).text
        assert "/home/someone" not in text and "someone" not in text
        assert "alex.pth" in text
        assert "native size" in text or fmt == "latex"  # print keeps only a pointer to --specs
    entries = json.loads(specs.read_text())
    assert {entry["metric"] for entry in entries} == {"bg_psnr", "bg_ssim", "bg_lpips", "fg_clip_t"}
    assert entries[0]["spec"]["model"] == ".../vit.pt" and entries[0]["protocol"] == "paper"
    assert without_paths("see ~/.cache/x/y.bin and ./a/b.txt") == "see .../y.bin and .../b.txt"


HOSTILE = 'evil|<script>alert("x")</script> *bold* 50% $x_1$ & {} \\end{document}'


def test_method_names_are_escaped_in_markdown_and_latex(tmp_path):
    frame = pd.concat([results_frame(HOSTILE, 0.0), results_frame("beta", 1.0)])
    path = write_results(tmp_path, frame, "hostile")
    text = make_report(ReportConfig(results=(str(path),), resamples=10)).text
    assert "<script>" not in text and "&lt;script>" in text and "&lt;/script>" in text
    row = next(line for line in text.splitlines() if "evil" in line)
    assert row.replace("\\|", "").count("|") == 11  # the name's "|" does not add a column
    assert markdown_escape("a|b*<i>") == "a\\|b\\*&lt;i>"
    # Only what could start HTML or a character reference is escaped: comparisons read as written.
    assert markdown_escape("n < 10, a & b, x > 1") == "n < 10, a & b, x > 1"
    assert markdown_escape("<!-- c --> &amp; &#60; <b") == "&lt;!-- c --> &amp;amp; &amp;#60; &lt;b"
    latex = make_report(ReportConfig(results=(str(path),), resamples=10, fmt="latex", latex_standalone=True)).text
    assert "\\end{document}" in latex and latex.count("\\end{document}") == 1
    assert "evil\\textbar{}\\textless{}script\\textgreater{}" in latex and "50\\%" in latex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    (tmp_path / "hostile.tex").write_text(latex)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "hostile.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_holm_correction_min_cases_and_effect_size(tmp_path):
    assert holm_adjusted([0.01, 0.04, 0.03, float("nan")]).tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm_adjusted([float("nan")])[0])
    assert effect_size([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    # 3 cases, every one better: the interval excludes 0 but no verdict is given below the minimum n.
    few = pd.concat([results_frame("alpha", 0.0, cases=3, kinds=("single",)),
                     results_frame("beta", 1.0, cases=3, kinds=("single",))])
    tests = paired_tests(load_results([write_results(tmp_path, few, "few")]), "beta", "alpha", resamples=200)
    assert (tests["ci_low"] > 0).all()
    assert set(tests["verdict"]) == {f"no verdict: n < {MIN_CASES_FOR_VERDICT}"}
    many = pd.concat([results_frame("alpha", 0.0, cases=12, kinds=("single",), noise=0.5, seed=1),
                      results_frame("beta", 1.0, cases=12, kinds=("single",), noise=0.5, seed=2)])
    tests = paired_tests(load_results([write_results(tmp_path, many, "many")]), "beta", "alpha", resamples=200)
    row = tests.set_index(["group", "metric"]).loc[("all", "bg_psnr")]
    assert row["verdict"] == "beta" and row["p_holm"] >= row["p_wilcoxon"] and row["effect_size"] > 1
    lpips = tests.set_index(["group", "metric"]).loc[("all", "bg_lpips")]
    assert lpips["verdict"] == "alpha"  # higher LPIPS is worse


def test_plots_are_points_and_empty_plots_are_not_written(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    frame = pd.concat([results_frame("alpha", 0.0, kinds=("single",)), results_frame("beta", 1.0, kinds=("single",))])
    lost = frame["metric"] == "fg_clip_t"
    frame.loc[lost, ["status", "reason"]] = ["missing_weights", "CLIP weights not found: /home/me/clip.bin"]
    frame.loc[lost, "value"] = float("nan")
    calls = []
    original = Axes.errorbar

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    Axes.errorbar = recording
    try:
        result = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "plots")),),
                                          plots_dir=str(tmp_path / "plots"), resamples=20))
    finally:
        Axes.errorbar = original
    assert sorted(path.name for path in result.files) == ["single_bg_lpips.png", "single_bg_psnr.png",
                                                           "single_bg_ssim.png", "single_by_mask_iou.png"]
    assert result.messages == ("no plot for single fg_clip_t: no valid value: "
                               "missing_weights: CLIP weights not found: .../clip.bin",)
    assert calls and all(call.get("linestyle") == "none" for call in calls)


def test_latex_keeps_double_dashes_of_options():
    from fsmi_bench.report.latex import escape

    assert escape("fsmi report --specs FILE") == "fsmi report -{}-specs FILE"
    assert escape("a—b x-y") == "a---b x-y"
