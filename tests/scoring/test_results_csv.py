"""The results CSV keeps the texts that repeat on every row once, in a sidecar; every reader gets the same
rows from the CSV as from the parquet, and older CSVs (every column on every row) still read."""

import json

import pandas as pd
import pytest

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.compare import compare_with_baseline
from fsmi_bench.report.make_report import ReportConfig, make_report
from fsmi_bench.report.results_table import load_results
from fsmi_bench.scoring.results_csv import sidecar_path
from fsmi_bench.scoring.score_run import write_results
from tests.support.results_tables import results_frame

LONG_REASON = "missing weights 'clip-vit-l-14-hf': " + "looked in /somewhere/else; " * 20


def scored_like(method: str, offset: float) -> pd.DataFrame:
    """Results rows as `fsmi score` writes them: a ~1 kB spec per metric, one provenance per method, and a
    long reason shared by the rows of a metric without weights."""
    frame = results_frame(method, offset, cases=6)
    frame["metric_spec"] = [json.dumps({"metric": metric, "model": "x" * 900}) for metric in frame["metric"]]
    lost = frame["metric"] == "fg_clip_t"
    frame.loc[lost, ["status", "reason"]] = ["missing_weights", LONG_REASON]
    frame.loc[lost, "value"] = float("nan")
    frame.loc[frame.index[3], ["status", "reason", "value"]] = ["bad_output", "mode 'L', not RGB", float("nan")]
    return frame


def test_csv_keeps_repeated_texts_once_and_reads_back_as_the_parquet(tmp_path):
    frame = pd.concat([scored_like("alpha", 0.0), scored_like("beta", 1.0)], ignore_index=True)
    out = tmp_path / "results.parquet"
    csv = write_results(frame, out)
    sidecar = sidecar_path(csv)
    assert sidecar.name == "results.meta.json" and sidecar.is_file()
    header = csv.read_text().splitlines()[0].split(",")
    assert "metric_spec" not in header and "run_provenance" not in header and "manifest_sha256" not in header
    old_size = len(frame.to_csv(index=False).encode())
    assert csv.stat().st_size + sidecar.stat().st_size < old_size / 5
    assert "(kept once in results.meta.json)" in csv.read_text() and "mode 'L', not RGB" in csv.read_text()
    from_parquet, from_csv = load_results([out]), load_results([csv])
    pd.testing.assert_frame_equal(from_csv[from_parquet.columns], from_parquet)
    assert pd.read_parquet(out).equals(frame)  # the parquet keeps every row's columns as they were
    # every reader: report, compare (through a leaderboard) and the gallery's loader all use load_results
    text_csv = make_report(ReportConfig(results=(str(csv),), resamples=20)).text
    assert text_csv == make_report(ReportConfig(results=(str(out),), resamples=20)).text
    board = tmp_path / "board.csv"
    make_report(ReportConfig(results=(str(out),), resamples=20, leaderboard=str(board)))
    assert compare_with_baseline([csv], board).ok


def test_old_csvs_read_and_a_lost_or_stale_sidecar_is_one_clear_error(tmp_path):
    frame = scored_like("alpha", 0.0)
    old = tmp_path / "old.csv"
    frame.to_csv(old, index=False)  # as fsmi wrote CSVs before: every column on every row
    pd.testing.assert_frame_equal(load_results([old]), load_results([frame]))
    csv = write_results(frame, tmp_path / "new.parquet")
    sidecar = sidecar_path(csv)
    kept = sidecar.read_text()
    sidecar.unlink()
    with pytest.raises(BadInputError, match="new.csv lacks the columns .* kept once in new.meta.json, which is not "
                                            "beside it"):
        load_results([csv])
    sidecar.write_text(kept)
    csv.write_text(csv.read_text().replace("alpha", "gamma"))
    with pytest.raises(BadInputError, match="belongs to another version of new.csv"):
        load_results([csv])


def test_a_method_with_several_specs_keeps_them_on_every_row(tmp_path):
    frame = scored_like("alpha", 0.0)
    frame.loc[frame.index[:5], "metric_spec"] = "{}"  # a table merged from two scorings of one method
    sidecar_path(tmp_path / "mixed.csv").write_text("stale")
    csv = write_results(frame, tmp_path / "mixed.parquet")
    assert "metric_spec" in csv.read_text().splitlines()[0] and not sidecar_path(csv).exists()
    pd.testing.assert_frame_equal(load_results([csv]), load_results([tmp_path / "mixed.parquet"]))
