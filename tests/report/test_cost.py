"""Each method's cost (seconds per edit, peak memory): recorded in run.json by `fsmi run`, shown by `fsmi report`
when run folders are given beside the results."""

import io
import json
import sys

import numpy as np
import pandas as pd
import pytest

import fsmi_bench as fsmi
from fsmi_bench.report.make_report import ReportConfig, make_report
from tests.support.tiny_benchmark import write_tiny_benchmark


def _status_kib(key: str) -> int:
    line = next(line for line in open("/proc/self/status") if line.startswith(key + ":"))
    return int(line.split()[1])


def test_run_records_its_cost_and_the_report_shows_it(tmp_path):
    bench = write_tiny_benchmark(tmp_path / "bench", n_single=2, n_multi=1, mask_types=("full", "circle"))
    earlier = np.ones(80_000_000)  # 640 MB held and freed before the runs: not theirs to count
    del earlier
    high_water = _status_kib("VmHWM") * 1024 if sys.platform == "linux" else 0
    runs = {name: fsmi.run_method(name, bench, out=tmp_path / name, progress=False) for name in ("identity", "inpaint")}
    again = fsmi.run_method("inpaint", bench, out=tmp_path / "inpaint", progress=False)  # nothing left to do
    assert again.written == 0
    records = {name: json.loads((run.root / "run.json").read_text()) for name, run in runs.items()}
    first, second = records["inpaint"]["invocations"]
    assert first["cost"]["edits"] == 6 and first["cost"]["edit_seconds"] > 0
    assert second["cost"]["edits"] == 0 and second["cost"]["edit_seconds"] == 0
    assert first["cost"]["peak_rss_bytes"] > 10 * 2**20  # a Python process with numpy holds tens of MB
    assert first["cost"]["peak_gpu_bytes"] is None  # CUDA never used here
    if sys.platform == "linux":  # the peak of this run, not the earlier peak of the test process
        assert first["cost"]["peak_rss_since"] == "invocation"
        assert first["cost"]["peak_rss_bytes"] < high_water - 300 * 2**20
    tables = [fsmi.score(run, bench, metrics=["bg_psnr", "fg_psnr"], progress=False) for run in runs.values()]
    paths = []
    for name, table in zip(runs, tables):
        paths.append(tmp_path / f"{name}.parquet")
        table.to_parquet(paths[-1])
    old = tmp_path / "old-run"  # a run folder whose run.json predates the cost record
    (old / "outputs").mkdir(parents=True)
    record = json.loads((runs["identity"].root / "run.json").read_text())
    record["method"] = "copy-paste"
    for invocation in record["invocations"]:
        invocation.pop("cost")
    (old / "run.json").write_text(json.dumps(record))
    given = (*map(str, paths), str(runs["identity"].root), str(runs["inpaint"].root), str(old))
    csv = make_report(ReportConfig(results=given, fmt="csv", resamples=20)).text
    cost = pd.read_csv(io.StringIO(csv)).query("table == 'Cost per method (from run.json)'").set_index(
        ["method", "metric"])
    # the second invocation wrote nothing: it says nothing of the method's cost
    assert cost.loc[("inpaint", "cost_seconds_per_edit"), "mean"] == pytest.approx(first["cost"]["edit_seconds"] / 6)
    assert cost.loc[("inpaint", "cost_peak_ram_gib"), "mean"] == pytest.approx(first["cost"]["peak_rss_bytes"] / 2**30)
    assert pd.isna(cost.loc[("inpaint", "cost_peak_gpu_gib"), "mean"])
    assert "CUDA not used" in cost.loc[("inpaint", "cost_peak_gpu_gib"), "note"]
    assert pd.isna(cost.loc[("copy-paste", "cost_seconds_per_edit"), "mean"])
    assert "records no cost" in cost.loc[("copy-paste", "cost_seconds_per_edit"), "note"]
    markdown = make_report(ReportConfig(results=given, resamples=20)).text
    assert "### Cost per method (from run.json)" in markdown and "| cpu | copy-paste (floor) | — (2) |" in markdown
    assert "Cost per method" not in make_report(ReportConfig(results=tuple(map(str, paths)), resamples=20)).text
