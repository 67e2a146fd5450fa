"""GPU check of FlexEdit: train ``small`` from scratch on the ``mini`` training split and measure it.

Reports (JSON to stdout and OUT/report.json): training samples/s, the loss curve (OUT/train/loss.csv,
loss.png), mask understanding on held-out objects before and after training (IoU of the full mask the
model draws, given a random-walk mask, against the true mask; compared with the copy-paste reading of
the mask: its bounding box, and with the free-shape mask itself), and `fsmi score` figures (metrics that
need no weights) for flexedit and copy-paste on a small benchmark built from held-out... the default
`mini` build. Run by benchmarks/gpu_flexedit.sh.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def box_of(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.zeros_like(mask)
    box[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1] = True
    return box


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def mask_understanding(pipeline, examples, steps: int) -> float:
    """Mean IoU of the drawn full mask against the true one, over held-out mask-task examples."""
    from flexedit_model.training.data import mask_from_image

    scores = []
    for example in examples:
        drawn = pipeline(example.scene, example.mask, example.instruction, seed=0, num_inference_steps=steps)
        scores.append(iou(mask_from_image(drawn.image), example.region))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="gpu_flexedit_out")
    parser.add_argument("--config", default="small")
    parser.add_argument("--train-seconds", type=float, default=300.0)
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--eval-examples", type=int, default=24)
    parser.add_argument("--eval-steps", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.data import TrainingExamples, load_training_content
    from flexedit_model.training.loop import train_flexedit

    config = load_config(args.config)
    heldout = load_training_content("mini", "heldout")
    held_examples = TrainingExamples(heldout, config.resolution, seed=12345, mask_task_fraction=1.0)
    evaluation = [held_examples[index] for index in range(args.eval_examples)]
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "config": args.config,
              "heldout_objects": sorted(obj.object_id for obj in heldout.objects)}
    report["iou_free_shape_mask"] = float(np.mean([iou(e.mask, e.region) for e in evaluation]))
    report["iou_copy_paste_box"] = float(np.mean([iou(box_of(e.mask), e.region) for e in evaluation]))

    untrained = build_pipeline(config, seed=int(config.training["seed"])).to(device)
    untrained.set_progress_bar_config(disable=True)
    report["iou_untrained"] = mask_understanding(untrained, evaluation, args.eval_steps)
    del untrained

    started = time.perf_counter()
    summary = train_flexedit(config, "mini", out / "train", steps=args.max_steps, progress=False,
                             time_limit_s=args.train_seconds)
    report["train_wall_s"] = round(time.perf_counter() - started, 1)
    report["train_steps"] = summary.steps
    report["train_samples_per_second"] = round(summary.samples_per_second, 2)
    report["loss_first_last"] = [summary.losses[0], summary.losses[-1]]

    trained = FlexEditPipeline.from_pretrained(summary.pipeline_dir).to(device)
    trained.set_progress_bar_config(disable=True)
    report["iou_trained"] = mask_understanding(trained, evaluation, args.eval_steps)
    del trained
    report["pipeline_mb"] = round(sum(p.stat().st_size for p in summary.pipeline_dir.rglob("*") if p.is_file()) / 1e6, 1)

    # fsmi score figures on a small build (no-weight metrics), flexedit vs copy-paste.
    from fsmi_bench.build import BuildConfig, build_benchmark
    from fsmi_bench.methods import METHODS
    from fsmi_bench.run_engine import RunConfig, run_method

    if "flexedit" not in METHODS:
        METHODS.register("flexedit", "flexedit_model.method:FlexEditMethod", "FlexEdit", needs=("weights",))
    bench = build_benchmark(BuildConfig(out=out / "bench", single=8, multi=8, size=max(64, config.resolution),
                                        previews=False, overwrite=True), progress=False)
    scores = {}
    for method, options in (("flexedit", {"weights": str(summary.pipeline_dir)}), ("copy-paste", {})):
        run_dir = out / f"run-{method}"
        run_method(RunConfig(method=method, bench=bench, out=run_dir, device=device, method_config=options,
                             progress=False))
        table = out / f"scores-{method}.parquet"
        subprocess.run([sys.executable, "-c", "from fsmi_bench.cli import main; main()", "score", "--bench", str(bench), "--run",
                        str(run_dir), "--metrics", "bg_psnr,bg_ssim,fg_psnr,whole_psnr", "--out", str(table)],
                       check=False)
        if table.is_file():
            import pandas

            frame = pandas.read_parquet(table)
            frame = frame[frame["status"] == "ok"]
            scores[method] = {metric: round(float(value), 4) for metric, value in
                              frame.groupby("metric")["value"].mean().items()}
    report["fsmi_score_means"] = scores
    report["trained_beats_untrained_and_copy_paste"] = bool(
        report["iou_trained"] > report["iou_untrained"] and report["iou_trained"] > report["iou_copy_paste_box"])
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
