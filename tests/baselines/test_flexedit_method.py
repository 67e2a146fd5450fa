"""The ``flexedit`` method: missing weights are explained; a tiny checkpoint runs through the run engine."""

from __future__ import annotations

import pytest

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.run.method import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")

if "flexedit" not in METHODS:  # until fsmi_bench/run/method.py registers it
    METHODS.register("flexedit", "baselines.flexedit:FlexEditMethod", "FlexEdit trained in the repository",
                     needs=("weights",))


def test_without_weights_points_to_training(monkeypatch, tmp_path):
    from baselines.flexedit import FlexEditMethod

    monkeypatch.delenv("FSMI_FLEXEDIT_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="fsmi train flexedit"):
        FlexEditMethod({}).setup()
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        FlexEditMethod({"weights": str(tmp_path)}).setup()


def test_run_engine_runs_flexedit_on_a_tiny_checkpoint(tmp_path):
    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.io import load_rgb
    from fsmi_bench.run.engine import RunConfig, run_method
    from fsmi_bench.run.folder import load_run

    build_pipeline(load_config("tiny")).save_pretrained(tmp_path / "weights")
    bench = build_benchmark(BuildConfig(out=tmp_path / "bench", single=1, multi=1, size=64, previews=False,
                                        workers=1), progress=False)
    summary = run_method(RunConfig(method="flexedit", bench=bench, out=tmp_path / "run", mask_types=("full", "circle"),
                                   method_config={"weights": str(tmp_path / "weights")}, progress=False))
    assert summary.written == 4 and summary.failed == 0
    run = load_run(tmp_path / "run")
    assert "flexedit" in run.info["weights"]
    benchmark = load_benchmark(bench)
    for row in benchmark.rows:
        if row.mask_type in ("full", "circle"):
            output = load_rgb(run.output_path(row.case_id, row.mask_type))
            assert output.shape == (row.height, row.width, 3)
