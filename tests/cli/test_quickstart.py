"""The README's main job in small: build, run the weightless methods, score, report; then the CI
regression check: a leaderboard written by the report passes `fsmi compare` until a number moves."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.io import load_rgb, save_png
from fsmi_bench.quickstart import QuickstartConfig, quickstart
from fsmi_bench.report.compare import compare_with_baseline

WEIGHTLESS = ("bg_psnr", "bg_ssim", "fg_psnr", "whole_psnr")


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    config = QuickstartConfig(out=root / "out", metrics=WEIGHTLESS, single=3, multi=2, size=96,
                              leaderboard=root / "board.csv", progress=False)
    return config, quickstart(config)


def test_chain_writes_results_report_and_plots(done):
    config, result = done
    assert [p.name for p in result.results] == ["identity.parquet", "copy-paste.parquet", "inpaint.parquet"]
    assert "Table 1: multi-image editing" in result.report_text and "Table 2: single-image editing" in result.report_text
    assert "| identity (floor) |" in result.report_text
    assert "Whole Image LPIPS ↓" in result.report_text  # direction known even without LPIPS rows
    assert result.report.read_text().startswith("###") or "Table 1" in result.report.read_text()
    assert list((config.out / "plots").glob("*.png"))


def test_rerun_reuses_everything_and_gives_the_same_report(done, monkeypatch):
    from fsmi_bench.report import make_report

    config, result = done
    outputs = sorted((config.out / "runs" / "inpaint" / "outputs").rglob("*.png"))
    written = [*outputs, *result.results, *(path.with_suffix(".csv") for path in result.results), result.report,
               *result.plots, config.leaderboard]
    stamps = [p.stat().st_mtime_ns for p in written]
    made = []
    monkeypatch.setattr(make_report, "make_report", lambda report_config: made.append(report_config))
    again = quickstart(config)
    assert again.report_text == result.report_text and again.plots == result.plots
    assert again.messages == result.messages
    assert [p.stat().st_mtime_ns for p in written] == stamps and made == []  # nothing redone, nothing rewritten


def test_a_report_is_made_again_when_a_plot_is_gone_or_the_command_changed(done, tmp_path):
    config, result = done
    result.plots[0].unlink()
    again = quickstart(config)
    assert result.plots[0].is_file() and again.report_text == result.report_text
    board = config.leaderboard.read_text()
    quickstart(QuickstartConfig(**{**config.__dict__, "command": "fsmi quickstart --a-new-command"}))
    assert config.leaderboard.read_text() != board and "--a-new-command" in config.leaderboard.read_text()
    quickstart(config)
    assert config.leaderboard.read_text() == board


def test_leaderboard_passes_compare_until_a_number_moves(done, tmp_path):
    config, result = done
    comparison = compare_with_baseline([str(p) for p in result.results], config.leaderboard)
    assert comparison.ok, comparison.text()
    # Change one output of one method, re-score it: the regression check must now fail.
    output = sorted((config.out / "runs" / "copy-paste" / "outputs").rglob("*.png"))[0]
    image = load_rgb(output)
    save_png(output, (255 - image).astype(np.uint8))
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    moved = tmp_path / "copy-paste.parquet"
    score_run(ScoreConfig(bench=config.out / "bench", run=config.out / "runs" / "copy-paste", metrics=WEIGHTLESS,
                          out=moved))
    others = [str(p) for p in result.results if p.name != "copy-paste.parquet"]
    comparison = compare_with_baseline(others + [str(moved)], config.leaderboard)
    assert not comparison.ok and "copy-paste" in comparison.text()
    code = CliRunner().invoke(main, ["compare", *others, str(moved), "--baseline", str(config.leaderboard)])
    assert code.exit_code == 1 and "copy-paste" in code.output


def test_summary_names_every_file_and_shows_table1_only(done):
    config, result = done
    summary = result.summary
    assert f"report   {config.out / 'report.md'}" in summary and f"gallery  {config.out / 'gallery' / 'index.html'}" in summary
    assert f"plots    {config.out / 'plots'} ({len(list((config.out / 'plots').glob('*.png')))} PNG)" in summary
    assert "### Table 1: multi-image editing" in summary and "Table 2" not in summary
    assert len(summary.splitlines()) < 25 < len(result.report_text.splitlines())
    assert result.gallery.is_file()


def test_cli_prints_the_summary_and_no_progress_bars_off_a_terminal(done):
    config, _ = done
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    result = runner.invoke(main, ["quickstart", "--out", str(config.out), "--metrics", ",".join(WEIGHTLESS),
                                  "--single", "3", "--multi", "2", "--size", "96"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"done: everything is in {config.out}") or "done: everything is in" in result.output
    assert "Table 2" not in result.output  # the whole report stays in report.md
    assert "it/s" not in result.output and "\r" not in result.output  # no progress bars: not a terminal
    assert "[5/5] gallery" in result.output


def test_unknown_method_fails_before_anything_is_built(tmp_path):
    result = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path / "q"), "--methods", "identity,copy-pase"])
    assert result.exit_code == 2 and "did you mean 'copy-paste'" in result.output
    assert not (tmp_path / "q").exists()
