"""`fsmi score` end to end on a tiny benchmark and run folder, with tiny random real models."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.io import load_mask, load_rgb, save_png, write_jsonl
from fsmi_bench.metrics import pixel
from fsmi_bench.metrics.models import ModelBank
from fsmi_bench.metrics.regions import crop, resize_image, resize_region, smartedit_box
from fsmi_bench.metrics.specs import MULTI_METRICS, SINGLE_METRICS, WEIGHTLESS_METRICS
from fsmi_bench.schema import RESULT_COLUMNS
from fsmi_bench.scoring.score_run import ScoreConfig, score_run
from tests.support.metric_models import (
    TINY_CLIP,
    write_lpips_files,
    write_tiny_clip,
    write_tiny_dinov2,
    write_tiny_hf_clip,
)
from tests.support.tiny_benchmark import write_tiny_benchmark

MASKS = ("full", "circle", "irregular_open")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_tiny_benchmark(tmp_path_factory.mktemp("bench"), n_single=2, n_multi=2, width=40, height=30,
                                mask_types=MASKS)


def write_run(root, bench, method="noisy", seed=0, size_mapping=None):
    """A run folder as `fsmi run` writes it: the scene (or GT for multi) plus noise, per mask condition."""
    benchmark = load_benchmark(bench)
    rng = np.random.default_rng(seed)
    for row in benchmark.rows:
        base = load_rgb(benchmark.path(row.gt if row.kind == "multi" else row.scene))
        noise = rng.integers(-40, 41, base.shape)
        save_png(root / "outputs" / row.case_id / f"{row.mask_type}.png",
                 np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8))
    info = {"method": method, "method_config": {"strength": 1}, "weights": {}, "git_commit": None, "seed": seed,
            "benchmark_dir": str(bench), "benchmark_version": benchmark.version,
            "manifest_sha256": benchmark.manifest_sha256, "size_mapping": size_mapping or {}, "shard": None,
            "created_at": "2026-01-01T00:00:00Z", "fsmi_version": "0.1.0"}
    (root / "run.json").write_text(json.dumps(info))
    write_jsonl(root / "failures.jsonl", [])
    return root


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from fsmi_bench.metrics.clip_metric import ClipEncoder, HfClipEncoder, load_hf_clip, load_open_clip
    from fsmi_bench.metrics.dino_metric import DinoEncoder, load_dinov2, load_dinov2_processor
    from fsmi_bench.metrics.lpips_metric import LpipsDistance, build_lpips

    folder = tmp_path_factory.mktemp("weights")
    open_clip_encoder = ClipEncoder(*load_open_clip(TINY_CLIP, write_tiny_clip(folder)))
    hf_clip = HfClipEncoder(*load_hf_clip(write_tiny_hf_clip(folder)))
    dino_folder = write_tiny_dinov2(folder)
    dino = DinoEncoder(load_dinov2(dino_folder), load_dinov2_processor(dino_folder))
    lpips = {net: LpipsDistance(build_lpips(net, *write_lpips_files(folder, net))) for net in ("squeeze", "alex")}
    return {"openai/clip-vit-large-patch14": hf_clip, "ViT-L-14": open_clip_encoder,
            "facebook/dinov2-small": dino, "lpips-squeeze-v0.1": lpips["squeeze"], "lpips-alex-v0.1": lpips["alex"]}


def _score(bench, run, tmp_path, tiny_models, **options):
    options.setdefault("cache_dir", tmp_path / "cache")
    config = ScoreConfig(bench=bench, run=run, out=options.pop("out", tmp_path / "results.parquet"), **options)
    return score_run(config, models=ModelBank(preloaded=tiny_models))


def test_score_writes_the_long_table_with_every_cell(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench)
    frame, summary = _score(bench, run, tmp_path, tiny_models)
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert len(frame) == 2 * 3 * len(SINGLE_METRICS) + 2 * 3 * len(MULTI_METRICS)
    assert set(frame["status"]) == {"ok"} and summary.counts == {"ok": len(frame)}
    assert frame["value"].dtype == np.float64 and frame["value"].notna().all()
    written = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(written, frame)
    assert (tmp_path / "results.csv").is_file()
    spec = json.loads(frame.loc[frame["metric"] == "fg_clip_t", "metric_spec"].iloc[0])
    assert spec["weights_sha256"].startswith("state:") and spec["size"] == 256 and spec["clamp"] == "max(0, .)"
    assert spec["model"] == "openai/clip-vit-large-patch14" and spec["region_mode"] == "smartedit_crop"
    assert set(spec["fsmi_choices"]) == {"multi_image_foreground"}
    provenance = json.loads(frame["run_provenance"].iloc[0])
    assert provenance["method_config"] == {"strength": 1} and provenance["seed"] == 0
    assert not frame.loc[frame["metric"] == "bg_lpips", "higher_is_better"].any()

    # One cell recomputed by hand with the paper protocol: 256x256, zero-filled background, SmartEdit's crop.
    benchmark = load_benchmark(bench)
    row = benchmark.rows_for("single_0001")[1]
    output = resize_image(load_rgb(run / "outputs" / row.case_id / f"{row.mask_type}.png"), 256)
    scene = resize_image(load_rgb(benchmark.path(row.scene)), 256)
    region = resize_region(load_mask(benchmark.path(row.region)), 256)
    cell = frame[(frame.case_id == row.case_id) & (frame.mask_type == row.mask_type)].set_index("metric")["value"]
    assert cell["bg_psnr"] == pytest.approx(pixel.psnr(output, scene, ~region, "zero_fill"), abs=1e-9)
    assert cell["bg_ssim"] == pytest.approx(pixel.ssim_torchmetrics(np.where(region[..., None], 0, output),
                                                                    np.where(region[..., None], 0, scene)), abs=1e-9)
    clip = tiny_models["openai/clip-vit-large-patch14"]
    expected = max(0.0, 100 * float(clip.encode_images([crop(output, smartedit_box(region))])[0]
                                    @ clip.encode_texts([row.clip_text])[0]))
    assert cell["fg_clip_t"] == pytest.approx(expected, abs=1e-5)
    # Multi-image foreground: SmartEdit's crop of output and GT alike (fsmi's choice, recorded).
    row = benchmark.rows_for("multi_0001")[0]
    output = resize_image(load_rgb(run / "outputs" / row.case_id / f"{row.mask_type}.png"), 256)
    gt = resize_image(load_rgb(benchmark.path(row.gt)), 256)
    region = resize_region(load_mask(benchmark.path(row.region)), 256)
    value = frame[(frame.case_id == row.case_id) & (frame.mask_type == row.mask_type)
                  & (frame.metric == "fg_psnr")]["value"].iloc[0]
    box = smartedit_box(region)
    assert value == pytest.approx(pixel.psnr(crop(output, box), crop(gt, box), region, "whole"), abs=1e-9)


def test_clip_from_an_open_clip_checkpoint_is_accepted_and_recorded(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench)
    only_open_clip = {name: model for name, model in tiny_models.items() if name != "openai/clip-vit-large-patch14"}
    frame, _ = _score(bench, run, tmp_path, only_open_clip, metrics=("fg_clip_t", "fg_clip_i"))
    assert set(frame["status"]) == {"ok"}
    spec = json.loads(frame["metric_spec"].iloc[0])
    assert spec["model"] == "ViT-L-14" and "open_clip" in spec["preprocess"]
    assert "model_substitute" in spec["fsmi_choices"] and spec["fallback_models"] == ["ViT-L-14"]
    # strict prefers the open_clip checkpoint, as before, and takes the Hugging Face folder when alone.
    strict, _ = _score(bench, run, tmp_path, tiny_models, metrics=("fg_clip_t",), protocol="strict",
                       out=tmp_path / "strict.parquet")
    assert json.loads(strict["metric_spec"].iloc[0])["model"] == "ViT-L-14"


def test_values_do_not_depend_on_batch_size_or_case_order(bench, tmp_path, tiny_models):
    import shutil

    run = write_run(tmp_path / "run", bench)
    one, _ = _score(bench, run, tmp_path, tiny_models, batch_size=1, use_cache=False, out=tmp_path / "a.parquet")
    # The same manifest rows in reverse order, scored in batches of 7, give the same cells.
    reversed_bench = tmp_path / "reversed"
    shutil.copytree(bench, reversed_bench)
    lines = (bench / "manifest.jsonl").read_text().splitlines()
    (reversed_bench / "manifest.jsonl").write_text("\n".join(lines[::-1]) + "\n")
    info = json.loads((run / "run.json").read_text())
    info["manifest_sha256"] = load_benchmark(reversed_bench).manifest_sha256
    (run / "run.json").write_text(json.dumps(info))
    flipped, _ = _score(reversed_bench, run, tmp_path, tiny_models, batch_size=7, use_cache=False,
                        out=tmp_path / "c.parquet")
    assert len(flipped) == len(one)
    np.testing.assert_allclose(one["value"], flipped["value"], atol=1e-5, rtol=0)


def test_cache_makes_rescoring_and_a_second_method_cheaper(bench, tmp_path, tiny_models):
    first = write_run(tmp_path / "first", bench, method="first", seed=1)
    frame, summary = _score(bench, first, tmp_path, tiny_models)
    assert summary.model_calls > 0
    again, rescored = _score(bench, first, tmp_path, tiny_models)
    assert rescored.model_calls == 0
    pd.testing.assert_frame_equal(frame, again)
    second = write_run(tmp_path / "second", bench, method="second", seed=2)
    only_second, other = _score(bench, second, tmp_path, tiny_models)
    assert set(only_second["method"]) == {"second"}
    both = pd.read_parquet(tmp_path / "results.parquet")
    # References (GT crops, whole GTs) and captions come from the cache; only outputs are encoded.
    assert 0 < other.model_calls < summary.model_calls
    assert set(both["method"]) == {"first", "second"}


def test_missing_failed_and_bad_outputs_are_rows_with_status(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench)
    (run / "outputs" / "single_0001" / "full.png").unlink()
    (run / "outputs" / "single_0002" / "circle.png").unlink()
    write_jsonl(run / "failures.jsonl", [{"case_id": "single_0002", "mask_type": "circle", "error": "out of memory"}])
    save_png(run / "outputs" / "multi_0001" / "full.png", np.zeros((30, 40), dtype=np.uint8))  # grayscale
    save_png(run / "outputs" / "multi_0001" / "circle.png", np.zeros((31, 40, 3), dtype=np.uint8))  # wrong size
    (run / "outputs" / "multi_0002" / "full.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 4), dtype=np.uint8), "RGBA").save(run / "outputs" / "multi_0002" / "circle.png")
    Image.fromarray(np.full((30, 40), 1000, dtype=np.uint16)).save(
        run / "outputs" / "multi_0002" / "irregular_open.png")
    frame, summary = _score(bench, run, tmp_path, tiny_models, metrics=WEIGHTLESS_METRICS)
    status = frame.groupby(["case_id", "mask_type"])["status"].first()
    assert status[("single_0001", "full")] == "missing_output"
    assert status[("single_0002", "circle")] == "failed_case"
    for key in [("multi_0001", "full"), ("multi_0001", "circle"), ("multi_0002", "full"),
                ("multi_0002", "circle"), ("multi_0002", "irregular_open")]:
        assert status[key] == "bad_output", key
    reasons = frame.set_index(["case_id", "mask_type"])["reason"]
    assert "out of memory" in reasons[("single_0002", "circle")].iloc[0]
    assert "mode 'L'" in reasons[("multi_0001", "full")].iloc[0]
    assert "no size mapping" in reasons[("multi_0001", "circle")].iloc[0]
    bad = frame[frame.status != "ok"]
    assert bad["value"].isna().all() and frame[frame.status == "ok"]["value"].notna().all()
    assert summary.counts["bad_output"] == 5 * 2 and summary.counts["missing_output"] == 2
    assert any("bad_output: 10" in line for line in summary.lines())


def test_pairs_the_run_did_not_select_are_left_out_and_said(bench, tmp_path, tiny_models):
    """run.json's invocations (a --limit 1 --kinds single run, then --mask-types circle over all) say what was
    asked; only those pairs are scored, and a selected pair without output is still a missing output."""
    run = write_run(tmp_path / "run", bench)
    info = json.loads((run / "run.json").read_text())
    info["invocations"] = [{"selection": {"kinds": ["single"], "limit": 1, "mask_types": None}},
                           {"selection": {"kinds": ["single", "multi"], "limit": None, "mask_types": ["circle"]}}]
    (run / "run.json").write_text(json.dumps(info))
    for case_id in ("single_0002", "multi_0001", "multi_0002"):  # outputs the selections did not ask for
        for mask_type in ("full", "irregular_open"):
            (run / "outputs" / case_id / f"{mask_type}.png").unlink()
    (run / "outputs" / "single_0001" / "full.png").unlink()  # asked for, not made
    frame, summary = _score(bench, run, tmp_path, tiny_models, metrics=WEIGHTLESS_METRICS)
    pairs = set(zip(frame["case_id"], frame["mask_type"]))
    assert pairs == {("single_0001", "full"), ("single_0001", "circle"), ("single_0001", "irregular_open"),
                     ("single_0002", "circle"), ("multi_0001", "circle"), ("multi_0002", "circle")}
    status = frame.groupby(["case_id", "mask_type"])["status"].first()
    assert status[("single_0001", "full")] == "missing_output" and (status.drop(("single_0001", "full")) == "ok").all()
    assert summary.not_selected == ("not scored: 6 of 12 (case, mask type) pairs, which the run did not select "
                                    "(--kinds single --limit 1; --mask-types circle) and holds no output for")
    assert summary.not_selected in summary.lines()


def test_recorded_size_mapping_resizes_outputs(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench, size_mapping={"rule": "resize to the scene's size", "resized": {}})
    save_png(run / "outputs" / "multi_0001" / "circle.png", np.zeros((60, 80, 3), dtype=np.uint8))
    frame, _ = _score(bench, run, tmp_path, tiny_models, metrics=("whole_psnr",))
    assert set(frame["status"]) == {"ok"}


def test_missing_weights_give_rows_with_reason_or_an_error(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("FSMI_CLIP_WEIGHTS", raising=False)
    run = write_run(tmp_path / "run", bench)
    config = ScoreConfig(bench=bench, run=run, out=tmp_path / "r.parquet", cache_dir=tmp_path / "cache",
                         metrics=("bg_psnr", "fg_clip_t"))
    frame, summary = score_run(config)
    clip_rows = frame[frame.metric == "fg_clip_t"]
    assert set(clip_rows["status"]) == {"missing_weights"} and clip_rows["value"].isna().all()
    assert "FSMI_CLIP_WEIGHTS" in clip_rows["reason"].iloc[0]
    assert set(frame[frame.metric == "bg_psnr"]["status"]) == {"ok"}
    strict = ScoreConfig(bench=bench, run=run, out=tmp_path / "s.parquet", metrics=("fg_clip_t",),
                         strict_weights=True)
    with pytest.raises(MissingWeightsError, match="clip-vit-l-14"):
        score_run(strict)
    monkeypatch.setenv("FSMI_CLIP_WEIGHTS", str(tmp_path / "nowhere.safetensors"))
    with pytest.raises(MissingWeightsError, match="nowhere"):
        score_run(config)


def test_other_benchmark_version_or_protocol_is_an_error(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench)
    _score(bench, run, tmp_path, tiny_models, metrics=("bg_psnr",))
    with pytest.raises(BadInputError, match="protocol"):
        _score(bench, run, tmp_path, tiny_models, metrics=("bg_psnr",), protocol="strict")
    info = json.loads((run / "run.json").read_text())
    info["benchmark_version"] = "fsmi-edit-0.9"
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(BadInputError, match="benchmark version"):
        _score(bench, run, tmp_path, tiny_models, metrics=("bg_psnr",), out=tmp_path / "other.parquet")


def test_strict_protocol_uses_native_size_and_masked_regions(bench, tmp_path, tiny_models):
    run = write_run(tmp_path / "run", bench)
    frame, _ = _score(bench, run, tmp_path, tiny_models, protocol="strict",
                      metrics=("bg_psnr", "bg_lpips", "fg_psnr"))
    benchmark = load_benchmark(bench)
    row = benchmark.rows_for("multi_0001")[0]
    output = load_rgb(run / "outputs" / row.case_id / f"{row.mask_type}.png")
    region = load_mask(benchmark.path(row.region))
    value = frame[(frame.case_id == row.case_id) & (frame.mask_type == row.mask_type)
                  & (frame.metric == "fg_psnr")]["value"].iloc[0]
    assert value == pytest.approx(pixel.psnr(output, load_rgb(benchmark.path(row.gt)), region, "masked"))
    spec = json.loads(frame[frame.metric == "bg_lpips"]["metric_spec"].iloc[0])
    assert spec["region_mode"] == "masked" and spec["params"]["net"] == "alex" and spec["size"] is None
    # At 40x30 pixels AlexNet's pooling cannot run: NaN with the reason, not an invented number.
    lpips_rows = frame[frame.metric == "bg_lpips"]
    assert lpips_rows["value"].isna().all() and lpips_rows["reason"].str.contains("too small").all()


def test_cli_score_and_doctor(bench, tmp_path):
    from fsmi_bench.cli import main

    run = write_run(tmp_path / "run", bench)
    runner = CliRunner()
    result = runner.invoke(main, ["score", "--bench", str(bench), "--run", str(run), "--metrics", "bg_psnr,fg_psnr",
                                  "--out", str(tmp_path / "cli.parquet"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ok: 12" in result.output and (tmp_path / "cli.parquet").is_file()
    result = runner.invoke(main, ["score", "--bench", str(tmp_path), "--run", str(run)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = runner.invoke(main, ["score", "--bench", str(bench), "--run", str(run), "--metrics", "bg_psnrr"])
    assert result.exit_code == 2 and "unknown metric" in result.output
    result = runner.invoke(main, ["doctor", "-v"])
    assert result.exit_code == 0, result.output
    assert "clip-vit-l-14" in result.output and "identity" in result.output and "looked:" in result.output
