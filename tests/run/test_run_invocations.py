"""run.json keeps every invocation: a second `fsmi run` into a folder with another selection adds to it,
score reads the outputs of all of them, and a run.json written before invocations were recorded still loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fsmi_bench
from fsmi_bench.errors import BadInputError
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from tests.support.run_fixtures import make_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=2)


def _run(bench, out, **options):
    return run_method(RunConfig(method="identity", bench=bench, out=out, progress=False, **options))


def test_a_second_run_with_another_selection_keeps_the_first(bench, tmp_path):
    out = tmp_path / "run"
    _run(bench, out, kinds=("single",), limit=1)
    _run(bench, out, kinds=("multi",), mask_types=("full",))
    info = json.loads((out / "run.json").read_text())
    first, second = info["invocations"]
    assert first["selection"] == {"mask_types": None, "kinds": ["single"], "limit": 1}
    assert second["selection"] == {"mask_types": ["full"], "kinds": ["multi"], "limit": None}
    assert first["counts"] == {"selected": 3, "written": 3, "skipped": 0, "failed": 0}
    assert second["counts"] == {"selected": 2, "written": 2, "skipped": 0, "failed": 0}
    assert [item["status"] for item in info["invocations"]] == ["complete", "complete"]
    assert all(item["fsmi_version"] == fsmi_bench.__version__ for item in info["invocations"])
    assert first["started_at"] <= first["finished_at"] <= second["started_at"] <= second["finished_at"]
    assert info["selection"] == second["selection"]  # the top-level keys describe the latest invocation
    assert load_run(out).info["invocations"] == info["invocations"]


def test_score_reads_the_outputs_of_every_invocation(bench, tmp_path):
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    out = tmp_path / "run"
    _run(bench, out, kinds=("single",), limit=1)
    _run(bench, out, kinds=("multi",), mask_types=("full",))
    frame, _ = score_run(ScoreConfig(bench=bench, run=out, out=tmp_path / "r.parquet",
                                     metrics=("bg_psnr", "whole_psnr"), use_cache=False))
    ok = frame[frame.status == "ok"]
    assert set(zip(ok.case_id, ok.mask_type)) == ({("single_0001", mask) for mask in ("full", "circle", "rectangle_open")}
                                                  | {("multi_0001", "full"), ("multi_0002", "full")})
    assert (frame.status == "ok").all()  # pairs no invocation selected are left out, not missing outputs


def test_a_run_json_without_invocations_loads_and_is_resumed(bench, tmp_path):
    out = tmp_path / "run"
    _run(bench, out, kinds=("single",), limit=1)
    old = json.loads((out / "run.json").read_text())
    del old["invocations"]  # as written before invocations were recorded
    (out / "run.json").write_text(json.dumps(old, indent=2))
    assert [item["selection"] for item in load_run(out).info["invocations"]] == [old["selection"]]
    _run(bench, out, kinds=("multi",), limit=1)
    info = json.loads((out / "run.json").read_text())
    assert [item["selection"]["kinds"] for item in info["invocations"]] == [["single"], ["multi"]]
    assert info["invocations"][0]["counts"] == old["counts"]


def test_an_interrupted_invocation_is_marked_so(bench, tmp_path):
    out = tmp_path / "run"
    _run(bench, out, kinds=("single",), limit=1)
    info = json.loads((out / "run.json").read_text())
    info["invocations"][0].update(status="running", finished_at=None, counts=None)  # as a kill leaves it
    (out / "run.json").write_text(json.dumps(info))
    _run(bench, out, kinds=("single",), limit=1)
    statuses = [item["status"] for item in json.loads((out / "run.json").read_text())["invocations"]]
    assert statuses == ["interrupted", "complete"]


def test_shards_invocations_are_merged(bench, tmp_path):
    from fsmi_bench.run.folder import Shard

    out = tmp_path / "run"
    _run(bench, out, shard=Shard(0, 2), kinds=("single",))
    _run(bench, out, shard=Shard(1, 2), kinds=("multi",))
    kinds = [item["selection"]["kinds"] for item in load_run(out).info["invocations"]]
    assert kinds == [["single"], ["multi"]]


@pytest.mark.parametrize("value", ["all", [1, 2], [{"no": "selection"}]])
def test_damaged_invocations_are_one_error(bench, tmp_path, value):
    out = tmp_path / "run"
    _run(bench, out, kinds=("single",), limit=1)
    info = json.loads((out / "run.json").read_text())
    info["invocations"] = value
    (out / "run.json").write_text(json.dumps(info))
    with pytest.raises(BadInputError, match="'invocations' must be a list of records"):
        load_run(out)
    with pytest.raises(BadInputError, match="'invocations' must be a list of records"):
        _run(bench, out, kinds=("single",), limit=1)
