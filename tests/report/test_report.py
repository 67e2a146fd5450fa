"""fsmi report: aggregation, bootstrap, tables (Markdown, LaTeX, CSV), plots, paired tests, reported rows,
bad input. Results tables are synthetic with known values (tests/support/results_tables.py)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.aggregate import FREE_SHAPE, FULL, aggregate_cells
from fsmi_bench.report.make_report import ReportConfig, make_report
from fsmi_bench.report.render import render_tables
from fsmi_bench.report.reported import PAPER_TABLES_FILE, paper_reported_frame
from fsmi_bench.report.results_table import load_results
from fsmi_bench.report.stats import bootstrap_mean_ci
from fsmi_bench.report.tables import build_tables
from fsmi_bench.schema import FREE_SHAPE_TYPES
from tests.support.results_tables import (
    MULTI_METRICS,
    SINGLE_METRICS,
    expected_group_mean,
    results_frame,
    write_results,
)

REPO = Path(__file__).resolve().parents[2]
PAPER_CSV = REPO.parent / "shared" / "paper" / "reported_tables.csv"  # the paper's own transcription, beside the checkout


@pytest.fixture()
def two_methods(tmp_path):
    """Method "alpha" (offset 0) and "beta" (offset 1: every value 1 higher), as parquet and CSV."""
    alpha = write_results(tmp_path, results_frame("alpha", 0.0), "alpha", "parquet")
    beta = write_results(tmp_path, results_frame("beta", 1.0), "beta", "csv")
    return alpha, beta


def cell(cells, method, kind, group, metric, source="measured"):
    rows = cells[(cells["method"] == method) & (cells["kind"] == kind) & (cells["group"] == group)
                 & (cells["metric"] == metric) & (cells["source"] == source)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_means_and_n_are_exact_per_group(two_methods):
    cells = aggregate_cells(load_results(two_methods), resamples=200)
    for offset, method in ((0.0, "alpha"), (1.0, "beta")):
        for group in (FULL, FREE_SHAPE):
            for metric_index, metric in enumerate(MULTI_METRICS):
                found = cell(cells, method, "multi", group.name, metric)
                expected = expected_group_mean(offset, 4, group.mask_types, metric_index)
                assert found["mean"] == pytest.approx(expected, abs=1e-12)
                assert found["n"] == 4 and found["n_cases"] == 4
        found = cell(cells, method, "single", "circle_open", "bg_lpips")
        assert found["mean"] == pytest.approx(expected_group_mean(offset, 4, ("circle_open",), 2), abs=1e-12)
    # Tag groups pool all masks of the cases with that tag: cases 0 and 3 are "add".
    found = cell(cells, "alpha", "multi", "op=add", "fg_psnr")
    assert found["n"] == 2
    assert found["mean"] == pytest.approx((0 + 3) / 2 + 0.1 * sum(range(9)) / 9, abs=1e-12)


def test_case_mean_first_and_invalid_rows_are_counted_not_zeroed(tmp_path):
    frame = results_frame("alpha", 0.0, kinds=("multi",))
    # Case 1 keeps only its "circle" row among free-shape types; case 2 loses all its fg_psnr rows.
    drop = (frame["metric"] == "fg_psnr") & (
        ((frame["case_id"] == "multi_0001") & frame["mask_type"].isin(FREE_SHAPE_TYPES[1:]))
        | (frame["case_id"] == "multi_0002"))
    frame.loc[drop, "status"] = "missing_output"
    frame.loc[drop, "value"] = float("nan")
    frame.loc[drop, "reason"] = "output file not found"
    cells = aggregate_cells(load_results([write_results(tmp_path, frame, "alpha")]), resamples=100)
    found = cell(cells, "alpha", "multi", "free_shape", "fg_psnr")
    case_means = [0 + 0.1 * 1,  # case 0 = multi_0001: only circle (mask index 1)
                  2 + 0.1 * sum(range(1, 9)) / 8, 3 + 0.1 * sum(range(1, 9)) / 8]
    assert found["n"] == 3 and found["n_cases"] == 4
    assert found["n_outputs"] == 4 * 8 - 15 and found["n_outputs_total"] == 4 * 8
    assert found["mean"] == pytest.approx(sum(case_means) / 3, abs=1e-12)
    assert "missing_output: output file not found (15 rows)" in found["reason"]


def test_a_case_that_lost_some_outputs_is_counted_and_noted_in_every_format(tmp_path):
    frame = results_frame("alpha", 0.0, kinds=("multi",))
    # One case loses 2 of its 8 free-shape outputs: every case keeps a value, so n alone would not show it.
    lost = (frame["case_id"] == "multi_0002") & frame["mask_type"].isin(FREE_SHAPE_TYPES[:2])
    frame.loc[lost, ["status", "reason"]] = ["failed_case", "CUDA out of memory"]
    frame.loc[lost, "value"] = float("nan")
    path = write_results(tmp_path, frame, "alpha")
    cells = aggregate_cells(load_results([path]), resamples=100)
    found = cell(cells, "alpha", "multi", "free_shape", "fg_psnr")
    assert found["n"] == found["n_cases"] == 4
    assert (found["n_outputs"], found["n_outputs_total"]) == (30, 32)
    complete = cell(cells, "alpha", "multi", "full", "fg_psnr")
    assert complete["n_outputs"] == complete["n_outputs_total"] == 4
    note = ("2 of 32 outputs without a value (every case keeps at least one; a case's value is the mean over "
            "the outputs it has): failed_case: CUDA out of memory")
    markdown = make_report(ReportConfig(results=(str(path),), resamples=100)).text
    table1 = markdown.split("### ")[1]
    assert "n=4 (30/32 outputs) (2)" in table1 and note in table1
    assert "(4/4 outputs)" not in table1  # complete cells stay as they were
    latex = make_report(ReportConfig(results=(str(path),), resamples=100, fmt="latex")).text
    assert "(30/32 outputs)" in latex and "2 of 32 outputs without a value" in latex
    assert "\\textit{Free-Shape Mask (n = 4 cases)}" in latex  # every cell of the block has n = 4
    rows = pd.read_csv(__import__("io").StringIO(make_report(ReportConfig(results=(str(path),), resamples=100,
                                                                          fmt="csv")).text))
    partial = rows[(rows["block"] == "Free-Shape Mask") & (rows["metric"] == "fg_psnr")].iloc[0]
    assert (partial["n_outputs"], partial["n_outputs_total"]) == (30, 32) and partial["note"] == note


def test_bootstrap_interval_contains_mean_and_is_reproducible():
    values = np.random.default_rng(3).normal(5.0, 2.0, size=40)
    first = bootstrap_mean_ci(values, resamples=500, seed=7)
    again = bootstrap_mean_ci(values, resamples=500, seed=7)
    other = bootstrap_mean_ci(values, resamples=500, seed=8)
    assert first == again
    assert first != other
    assert first.mean == pytest.approx(values.mean())
    assert first.ci_low < first.mean < first.ci_high
    # The interval has the width of about 2 standard errors on each side.
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    assert 2.5 * standard_error < first.ci_high - first.ci_low < 5.5 * standard_error
    assert bootstrap_mean_ci([], 10).n == 0 and math.isnan(bootstrap_mean_ci([], 10).mean)


def test_report_is_independent_of_row_order_and_file_order(tmp_path, two_methods):
    frame = pd.concat([results_frame("alpha", 0.0, noise=0.5), results_frame("beta", 1.0, noise=0.5, seed=1)])
    forward = write_results(tmp_path, frame, "forward")
    shuffled = write_results(tmp_path, frame.sample(frac=1.0, random_state=4), "shuffled")
    first = make_report(ReportConfig(results=(str(forward),), resamples=300)).text
    second = make_report(ReportConfig(results=(str(shuffled),), resamples=300)).text
    assert first == second


def _tables(paths, with_paper=False):
    frame = load_results(paths, extra=paper_reported_frame() if with_paper else None)
    cells = aggregate_cells(frame, resamples=100)
    reported = frame[frame["status"] == "reported"]
    return build_tables(cells, list(dict.fromkeys(zip(reported["kind"], reported["method"]))), 100, 0)


def test_bold_follows_higher_is_better_and_never_reported_rows(two_methods):
    tables = _tables(two_methods, with_paper=True)
    table1 = tables[0]
    assert table1.title.startswith("Table 1") and [b.label for b in table1.blocks] == ["Full Mask", "Free-Shape Mask"]
    lpips_column = table1.metrics.index("whole_lpips")
    psnr_column = table1.metrics.index("fg_psnr")
    assert table1.higher_is_better[lpips_column] is False
    for block in table1.blocks:
        rows = {row.label: row for row in block.rows}
        # beta is 1 higher everywhere: best for PSNR, worst for LPIPS (lower is better).
        assert rows["beta"].cells[psnr_column].bold and not rows["alpha"].cells[psnr_column].bold
        assert rows["alpha"].cells[lpips_column].bold and not rows["beta"].cells[lpips_column].bold
        # The paper's FlexEdit fg_psnr (13.16) is above both measured means but is never bold.
        assert rows["FlexEdit (reported)"].cells[psnr_column].mean == 13.1645 if block.group == "full" else True
        assert not any(c.bold for label, row in rows.items() if "(reported)" in label for c in row.cells)
    markdown = render_tables(tables, "markdown")
    assert "**" + f"{expected_group_mean(1.0, 4, ('full',), 0):.4f}" in markdown


def test_markdown_structure_missing_cells_and_spec_footnotes(tmp_path):
    frame = pd.concat([results_frame("alpha", 0.0), results_frame("beta", 1.0)])
    lpips = (frame["method"] == "beta") & (frame["metric"] == "whole_lpips")
    frame.loc[lpips, ["status", "reason"]] = ["missing_weights", "LPIPS weights not found: put alex.pth in $TORCH_HOME"]
    frame.loc[lpips, "value"] = float("nan")
    text = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "both")),), with_paper=True,
                                   resamples=100)).text
    section = text.split("### ")[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert all(line.count("|") == 11 for line in lines)  # Mask, Method + 8 metrics
    assert "Whole Image LPIPS ↓" in lines[0] and "Foreground PSNR ↑" in lines[0]
    beta_full = next(line for line in lines if "| beta |" in line)
    assert "— (" in beta_full and "n=4" in beta_full and "[" in beta_full
    # cells missing for the same reason share one note
    assert section.count("no valid value: missing_weights: LPIPS weights not found") == 1
    assert "| AnyDoor (reported) | 13.1316 | 22.0478 | 0.8959 | 0.2485 | 19.2274 | 0.1055 | 0.2340 | 0.9292 |" in section
    assert "unreleased FSMI-Edit data" in section and "look swapped" in section
    # Short metric notes (name, model, region rule, size; protocol), the full specs only on request.
    assert "Protocol paper, benchmark fsmi-edit-1.0: fg_psnr = PSNR, bbox crop, 256 px;" in section
    assert "input_size" not in section and "Full specs: fsmi report --specs FILE" in section
    assert "### Table 2: single-image editing" in text
    assert "### Multi-image editing by mask type" in text and "### Single-image editing by tag (all masks)" in text


def test_csv_format_one_row_per_cell(two_methods):
    tables = _tables(two_methods)
    frame = pd.read_csv(__import__("io").StringIO(render_tables(tables, "csv")))
    assert list(frame.columns) == ["table", "block", "method", "source", "section", "metric", "mean", "ci_low",
                                   "ci_high", "n", "n_outputs", "n_outputs_total", "bold", "unequal", "note"]
    table1 = frame[frame["table"].str.startswith("Table 1")]
    assert len(table1) == 2 * 2 * 8  # blocks x methods x metrics
    row = table1[(table1["block"] == "Full Mask") & (table1["method"] == "alpha") & (table1["metric"] == "fg_psnr")]
    assert row["mean"].iloc[0] == pytest.approx(expected_group_mean(0.0, 4, ("full",), 0))
    assert (row["ci_low"] <= row["mean"]).all() and (row["mean"] <= row["ci_high"]).all()


def test_latex_structure_and_compiles(tmp_path, two_methods):
    out = tmp_path / "tables.tex"
    make_report(ReportConfig(results=tuple(map(str, two_methods)), fmt="latex", out=str(out), with_paper=True,
                            resamples=100))
    latex = out.read_text()
    assert latex.startswith("% fsmi report tables; needs in the preamble: \\usepackage{booktabs,graphicx}")
    # 12 tables (6 of the paper's layouts, 6 by mask looseness); those of 8 metrics are split in two floats of
    # 4, so that every float is legible at the text width (shrunk only if it would still be wider), and a
    # float taller than a page is cut between blocks
    floats = latex.count("\\begin{table}")
    assert floats == latex.count("\\end{table}") == latex.count("\\begin{tabular}{lrrrr}") > 18
    assert latex.count("\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}") == floats
    assert "\\caption{Multi-image editing by mask type: foreground (1 of 2)}" in latex
    assert "\\caption{Multi-image editing by mask type: foreground (2 of 2)}" in latex
    assert "\\caption{multi-image editing, full vs free-shape masks: foreground}" in latex
    assert "\\caption{multi-image editing, full vs free-shape masks: whole image}" in latex
    assert "\\multicolumn{3}{c}{Background} & \\multicolumn{1}{c}{Foreground}" in latex
    assert "LPIPS $\\downarrow$" in latex and "\\textbf{" in latex and "FlexEdit (reported) & 13.1645" in latex
    assert "\\textit{Full Mask (n = 4 cases)}" in latex and "95 \\%" in latex
    for body in latex.split("\\begin{table}")[1:]:
        for line in body.splitlines():
            if line.endswith("\\\\") and "&" in line and "multicolumn" not in line:
                assert line.count("&") - line.count("\\&") == 4
        table, notes = body.split("\\begin{minipage}")
        # footnotes: a legend, the notes cells point to, one brief paragraph; never the long Markdown notes
        assert len(notes) < 1000 and "fsmi's choice (" not in notes, notes
        rows = [line for line in table.splitlines() if line.endswith("\\\\")]
        printed = sum(2 if "\\begin{tabular}[t]" in line else 1 for line in rows)  # a mean, then its interval
        assert 10 < printed <= 36 + 2  # MAX_LINES, and the column headers: the float and its notes fit a page
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended); "
                    "the LaTeX was checked structurally only")
    from fsmi_bench.report.latex import standalone_document

    document = tmp_path / "doc.tex"
    document.write_text(standalone_document(latex))
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_plots_one_png_per_kind_and_metric(tmp_path):
    frame = pd.concat([results_frame("alpha", 0.0, kinds=("single",)), results_frame("beta", 1.0, kinds=("single",))])
    result = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "both")),),
                                     plots_dir=str(tmp_path / "plots"), resamples=50))
    names = sorted(path.name for path in result.files)
    expected = sorted([f"single_{m}.png" for m in SINGLE_METRICS] + ["single_by_mask_iou.png"])
    assert names == expected
    for path in result.files:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "plots").glob(".*.tmp"))


def test_paired_test_detects_a_shift_and_not_a_null(tmp_path):
    from fsmi_bench.report.paired import paired_tests

    base = results_frame("alpha", 0.0, cases=20, kinds=("single",), noise=1.0, seed=1)
    shifted = results_frame("shifted", 0.6, cases=20, kinds=("single",), noise=1.0, seed=2)
    null = results_frame("null", 0.0, cases=20, kinds=("single",), noise=1.0, seed=3)
    frame = load_results([write_results(tmp_path, pd.concat([base, shifted, null]), "all")])
    shift = paired_tests(frame, "shifted", "alpha", resamples=1000).set_index(["group", "metric"])
    row = shift.loc[("all", "bg_psnr")]
    assert row["n_cases"] == 20 and row["n_pairs"] == 180
    assert row["difference"] == pytest.approx(0.6, abs=0.15)
    assert row["ci_low"] > 0 and row["p_bootstrap"] < 0.01 and row["p_wilcoxon"] < 0.01
    same = paired_tests(frame, "null", "alpha", resamples=1000).set_index(["group", "metric"])
    for metric in SINGLE_METRICS:
        assert same.loc[("all", metric), "p_bootstrap"] > 0.05 and same.loc[("all", metric), "p_wilcoxon"] > 0.05
    from fsmi_bench.report.paired import render_paired

    text = render_paired(shift.reset_index(), "shifted", "alpha", 1000, 0)
    assert "| single | all | bg_psnr | 20 (180) |" in text and "| shifted |" in text
    # LPIPS: higher values of "shifted" are worse, so alpha is named better.
    assert "bg_lpips" in text and text.split("| single | all | bg_lpips |")[1].split("\n")[0].endswith("| alpha |")
    with pytest.raises(BadInputError, match="not in the results"):
        paired_tests(frame, "shifted", "nobody")


def test_reported_rows_hold_exactly_the_papers_numbers():
    frame = paper_reported_frame()
    assert len(frame) == 80 and set(frame["status"]) == {"reported"} and set(frame["protocol"]) == {"reported"}
    source = pd.read_csv(PAPER_TABLES_FILE, dtype={"value": str})
    assert [float(v) for v in source["value"]] == frame["value"].tolist()
    by_key = frame.set_index(["method", "kind", "mask_type", "metric"])["value"]
    assert by_key[("FlexEdit", "multi", "full", "fg_clip_t")] == 24.1754
    assert by_key[("AnyDoor", "multi", "free_shape", "whole_dinov2")] == 0.8292
    assert by_key[("SmartEdit", "single", "all", "bg_lpips")] == 0.0781
    assert not frame.loc[frame["metric"].str.endswith("lpips"), "higher_is_better"].any()
    if PAPER_CSV.is_file():
        assert PAPER_CSV.read_text() == PAPER_TABLES_FILE.read_text()


def test_committed_paper_leaderboard_matches_the_code(tmp_path):
    committed = REPO / "leaderboards" / "paper_reported.csv"
    assert committed.is_file(), "regenerate with: fsmi report --write-paper-rows leaderboards/paper_reported.csv"
    header = [line for line in committed.read_text().splitlines() if line.startswith("#")]
    assert any(line.startswith("# git_commit:") for line in header)
    assert any(line.startswith("# command: fsmi report --write-paper-rows") for line in header)
    loaded = load_results([committed])
    expected = paper_reported_frame()
    assert loaded["value"].tolist() == expected["value"].tolist()
    assert loaded[["method", "kind", "mask_type", "metric"]].values.tolist() == \
        expected[["method", "kind", "mask_type", "metric"]].values.tolist()


def test_cli_report_and_write_paper_rows(tmp_path, two_methods):
    from fsmi_bench.cli.report import command as report_command

    runner = CliRunner()
    paper = tmp_path / "paper.csv"
    result = runner.invoke(report_command, ["--write-paper-rows", str(paper)])
    assert result.exit_code == 0, result.output
    assert load_results([paper])["value"].tolist() == paper_reported_frame()["value"].tolist()
    result = runner.invoke(report_command, [*map(str, two_methods), str(paper), "--markdown", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert "| Full Mask | alpha |" in result.output and "FlexEdit (reported)" in result.output
    result = runner.invoke(report_command, [*map(str, two_methods), "--paired", "beta", "alpha"])
    assert result.exit_code == 0 and "Paired test: beta (A) vs alpha (B)" in result.output
    assert "no verdict: n < 10" in result.output and "&lt;" not in result.output  # reads as written


def test_bad_inputs_give_one_line_errors(tmp_path, two_methods):
    other_version = write_results(tmp_path, results_frame("gamma", 0.0, version="fsmi-edit-0.9"), "gamma")
    with pytest.raises(BadInputError, match="mix benchmark versions.*fsmi-edit-0.9: .*gamma.parquet"):
        load_results([*two_methods, other_version])
    other_protocol = write_results(tmp_path, results_frame("delta", 0.0, protocol="strict"), "delta")
    with pytest.raises(BadInputError, match="mix protocols"):
        load_results([two_methods[0], other_protocol])
    with pytest.raises(BadInputError, match="duplicate results row"):
        load_results([two_methods[0], two_methods[0]])
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(two_methods[0].read_bytes()[:200])
    with pytest.raises(BadInputError, match="corrupt.parquet"):
        load_results([corrupt])
    not_a_table = tmp_path / "notes.csv"
    not_a_table.write_text("a,b\n1,2\n")
    with pytest.raises(BadInputError, match="not a results table: missing columns method"):
        load_results([not_a_table])
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(BadInputError, match="not a results table"):
        load_results([binary])
    with pytest.raises(BadInputError, match="not found"):
        load_results([tmp_path / "absent.parquet"])
    # Nothing is written when the input is bad.
    out = tmp_path / "report.md"
    with pytest.raises(BadInputError):
        make_report(ReportConfig(results=(str(two_methods[0]), str(other_version)), out=str(out)))
    assert not out.exists()


def test_fsmi_choices_are_noted_as_such_with_their_reason(tmp_path):
    from fsmi_bench.metrics.specs import PROTOCOLS

    frame = pd.concat([results_frame("alpha", 0.0), results_frame("beta", 1.0)])
    frame["metric_spec"] = [PROTOCOLS["paper"][metric].to_json() for metric in frame["metric"]]
    text = make_report(ReportConfig(results=(str(write_results(tmp_path, frame, "paper")),), resamples=100)).text
    table1, table2 = text.split("### ")[1:3]
    assert ("fsmi's choice (psnr_cap; neither SmartEdit's evaluator nor the paper fixes it) for fg_psnr, whole_psnr: "
            "PSNR above 100 dB is reported as 100 dB") in table1
    assert "Why: one untouched background would make every mean over cases infinite." in table1
    assert "fsmi's choice (multi_image_foreground; " in table1
    assert "for fg_psnr, fg_clip_t, fg_clip_i, fg_dinov2:" in table1
    # Table 2 is SmartEdit's script: only the PSNR cap (and fg_clip_t's multi-image rule) are fsmi's there.
    assert "psnr_cap" in table2 and "for bg_psnr:" in table2
    assert "bg_ssim" not in "".join(line for line in table2.splitlines() if "fsmi's choice" in line)
    # The choices are not repeated inside the spec footnotes.
    assert all("fsmi_choices=" not in line for line in text.splitlines())


def test_missing_weights_are_said_once_with_the_command_that_fetches_them(tmp_path):
    """Results scored where no metric weights are (the tests' empty caches): the report names each missing
    weight and `fsmi weights fetch` once, not one long message per metric."""
    import fsmi_bench as fsmi
    from fsmi_bench.quickstart import QuickstartResult
    from tests.support.tiny_benchmark import write_tiny_benchmark

    bench = write_tiny_benchmark(tmp_path / "bench", n_single=2, n_multi=2, mask_types=("full", "circle"))
    run = fsmi.run_method("identity", bench, out=tmp_path / "run", progress=False)
    table = fsmi.score(run, bench, progress=False)  # every metric of the paper protocol
    assert set(table.loc[table["status"] == "missing_weights", "metric"]) == {
        "fg_clip_t", "fg_clip_i", "fg_dinov2", "whole_lpips", "whole_clip_i", "whole_dinov2", "bg_lpips"}
    assert table["reason"].str.len().max() > 500  # the rows keep the long form, every place looked at
    report = fsmi.make_report(table, plots=tmp_path / "plots", resamples=20)
    about_weights = [message for message in report.messages if "weights" in message]
    assert len(about_weights) == 1, report.messages
    message = about_weights[0]
    assert message.startswith("8 metrics have no values and no plot (multi fg_clip_i, multi fg_clip_t")
    assert "fsmi weights fetch clip-vit-l-14-hf dinov2-small squeezenet-imagenet downloads them" in message
    assert len(message) < 400
    notes = [line for line in report.text.splitlines() if "missing_weights" in line]
    assert notes and all(len(line) < 200 for line in notes)
    assert "no valid value: missing_weights: clip-vit-l-14-hf (or clip-vit-l-14) not on this machine (fsmi " \
           "weights fetch clip-vit-l-14-hf downloads it" in report.text
    summary = QuickstartResult(bench=bench, results=(), report=tmp_path / "report.md", report_text=report.text,
                               messages=report.messages).summary
    assert summary.count("fsmi weights fetch") == 1
