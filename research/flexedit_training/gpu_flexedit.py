"""Check that FlexEdit learns: train a config from scratch on a source's training split and measure it.

Reports (OUT/report.json, rewritten after every stage so that a run stopped by its time guard still
leaves what it measured; OUT/figures.md, the same as a table):
- training samples/s and the loss curve (OUT/loss.csv, OUT/loss.png, and a few points in the report);
- mask understanding on held-out objects (never trained on) before and after training: each example is
  a photo with a ``random_walk`` mask drawn inside one object; the model is asked to draw the object's
  full mask (white on black) and the IoU of what it draws against the true mask is averaged. Compared
  with the copy-paste reading of the same mask (its bounding box, what ``copy-paste`` pastes into) and
  with the free-shape mask itself; ``*_trained_against_box`` pairs the trained model with the box per
  example (mean difference, its 95 % bootstrap interval, share of examples won). Measured on the
  held-out objects in their own photos, on the same objects pasted on other photos, and on training
  objects (new masks); OUT/heldout_masks.png and OUT/heldout_pasted_masks.png show the first examples;
- how much the condition c the UNet reads changes when only the mask moves, beside when the scene
  changes too (``*_condition_change``): near 0 for the first, the model does not read the mask; the
  same for the VLLM's <img_i> states and the Q-Former's output, to see where a mask signal is lost;
- ``fsmi score`` figures (the metrics that need no weights) for flexedit and copy-paste on a small
  benchmark build (``--score-cases``, 0 to skip).

The measuring functions are ``flexedit_model.evaluation``'s. Run by gpu_flexedit.sh (beside this file) on one
GPU (config ``small``); on CPU, for the learning signal:
    .venv/bin/python research/flexedit_training/gpu_flexedit.py --config cpu-check --train-seconds 600 --out runs/cpu-check
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from flexedit_model.evaluation import (
    against_box,
    box_ious,
    box_of,
    evaluation_sets,
    loss_points,
    mask_sensitivity,
    mask_understanding,
    reference_ious,
    save_drawings,
)


class Report:
    """The report, written (atomically) to OUT/report.json and OUT/figures.md after every stage."""

    def __init__(self, out: Path, **fields):
        self.out, self.fields = out, dict(fields)

    def update(self, **fields) -> None:
        from fsmi_bench.io import atomic_write_text

        self.fields.update(fields)
        atomic_write_text(self.out / "report.json", json.dumps(self.fields, indent=2) + "\n")
        lines = ["| figure | value |", "|---|---|"] + [
            f"| {key} | {json.dumps(value) if isinstance(value, (dict, list)) else value} |"
            for key, value in self.fields.items() if key != "heldout_objects"]
        atomic_write_text(self.out / "figures.md", "\n".join(lines) + "\n")


def score_means(bench: Path, out: Path, pipeline_dir: Path, device: str, mask_types) -> dict:
    """Mean of each weight-free ``fsmi score`` metric for flexedit and copy-paste over ``bench``."""
    from fsmi_bench.metrics.specs import WEIGHTLESS_METRICS
    from fsmi_bench.run.engine import RunConfig, run_method
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    means = {}
    for method, options in (("flexedit", {"weights": str(pipeline_dir)}), ("copy-paste", {})):
        run_dir = out / f"run-{method}"
        run_method(RunConfig(method=method, bench=bench, out=run_dir, device=device, mask_types=mask_types,
                             method_config=options, progress=False))
        frame, _ = score_run(ScoreConfig(bench=bench, run=run_dir, metrics=WEIGHTLESS_METRICS,
                                         out=out / f"scores-{method}.parquet", use_cache=False))
        frame = frame[frame["mask_type"].isin(mask_types)]  # the conditions not run are not failures
        ok = frame[frame["status"] == "ok"]
        means[method] = {metric: round(float(value), 3) for metric, value in ok.groupby("metric")["value"].mean().items()}
        means[method]["rows_ok"] = int(len(ok))
        means[method]["rows_not_ok"] = int(len(frame) - len(ok))
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_flexedit_out", help="report, figures and loss curve go here")
    parser.add_argument("--work", default=None, help="checkpoints and benchmark runs (default: OUT/work)")
    parser.add_argument("--config", default="small")
    parser.add_argument("--data", default="mini")
    parser.add_argument("--train-seconds", type=float, default=270.0)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--eval-examples", type=int, default=48)
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--score-cases", type=int, default=8, help="single and multi cases each; 0 skips scoring")
    parser.add_argument("--score-mask-types", default="full,circle,irregular")
    parser.add_argument("--keep-mb", type=float, default=20.0, help="copy the pipeline to OUT if under this size")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.data import load_training_content
    from flexedit_model.training.loop import train_flexedit

    config = load_config(args.config)
    heldout, train = load_training_content(args.data, "heldout"), load_training_content(args.data, "train")
    sets = evaluation_sets(heldout, train, config.resolution, args.eval_examples)
    evaluation, seen_evaluation, pasted_evaluation = sets["heldout"], sets["training"], sets["pasted"]
    report = Report(out, device=torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
                    config=args.config, data=args.data, resolution=config.resolution,
                    eval_examples=len(evaluation), eval_steps=args.eval_steps,
                    heldout_objects=sorted(obj.object_id for obj in heldout.objects))
    for prefix, examples in (("", evaluation), ("pasted_", pasted_evaluation), ("training_", seen_evaluation)):
        report.update(**{f"{prefix}iou_{name}": value for name, value in reference_ious(examples).items()})

    untrained = build_pipeline(config, seed=int(config.training["seed"])).to(device)
    untrained.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    untrained_drawings, trained_drawings, pasted_drawings = [], [], []
    report.update(untrained=mask_understanding(untrained, evaluation, args.eval_steps, untrained_drawings),
                  eval_wall_s=round(time.perf_counter() - started, 1),
                  untrained_on_training_objects=mask_understanding(untrained, seen_evaluation, args.eval_steps),
                  untrained_heldout_pasted=mask_understanding(untrained, pasted_evaluation, args.eval_steps),
                  untrained_condition_change=mask_sensitivity(untrained, pasted_evaluation[:8]))
    del untrained

    started = time.perf_counter()
    summary = train_flexedit(config, args.data, work / "train", steps=args.max_steps, content=train, progress=False,
                             time_limit_s=args.train_seconds)
    for name in ("loss.csv", "loss.png"):
        if (work / "train" / name).is_file():
            shutil.copyfile(work / "train" / name, out / name)
    pipeline_mb = sum(p.stat().st_size for p in summary.pipeline_dir.rglob("*") if p.is_file()) / 1e6
    report.update(train_wall_s=round(time.perf_counter() - started, 1), train_steps=summary.steps,
                  train_batch_size=int(config.training["batch_size"]),
                  train_samples_per_second=round(summary.samples_per_second, 2),
                  loss_curve=loss_points(work / "train" / "loss.csv"), pipeline_mb=round(pipeline_mb, 1))
    if pipeline_mb < args.keep_mb:
        shutil.copytree(summary.pipeline_dir, out / "pipeline", dirs_exist_ok=True)

    trained = FlexEditPipeline.from_pretrained(summary.pipeline_dir).to(device)
    trained.set_progress_bar_config(disable=True)
    scores = {name: [] for name in ("", "training_", "pasted_")}
    report.update(trained=mask_understanding(trained, evaluation, args.eval_steps, trained_drawings, scores[""]),
                  trained_on_training_objects=mask_understanding(trained, seen_evaluation, args.eval_steps,
                                                                 scores=scores["training_"]),
                  trained_heldout_pasted=mask_understanding(trained, pasted_evaluation, args.eval_steps,
                                                            pasted_drawings, scores["pasted_"]),
                  trained_condition_change=mask_sensitivity(trained, pasted_evaluation[:8]))
    # Paired with the box example by example: a difference of means over a few dozen examples can move
    # by a few hundredths with other examples; the interval says how far.
    report.update(**{f"{prefix}trained_against_box": against_box(scores[prefix], box_ious(examples))
                     for prefix, examples in (("", evaluation), ("training_", seen_evaluation),
                                              ("pasted_", pasted_evaluation))})
    del trained
    save_drawings(out / "heldout_masks.png", evaluation, {
        "copy-paste box": [box_of(example.mask) for example in evaluation],
        "untrained": untrained_drawings, "trained": trained_drawings})
    save_drawings(out / "heldout_pasted_masks.png", pasted_evaluation, {
        "copy-paste box": [box_of(example.mask) for example in pasted_evaluation], "trained": pasted_drawings})
    fields = report.fields

    def beats(trained: str, untrained: str, box: str) -> bool:
        return bool(fields[trained]["iou"] > max(fields[untrained]["iou"], fields[box]))

    report.update(
        trained_beats_untrained_and_copy_paste=beats("trained", "untrained", "iou_copy_paste_box"),
        pasted_trained_beats_untrained_and_copy_paste=beats("trained_heldout_pasted", "untrained_heldout_pasted",
                                                            "pasted_iou_copy_paste_box"),
        training_trained_beats_untrained_and_copy_paste=beats("trained_on_training_objects",
                                                              "untrained_on_training_objects",
                                                              "training_iou_copy_paste_box"))

    if args.score_cases > 0:
        from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark

        started = time.perf_counter()
        bench = build_benchmark(BuildConfig(out=work / "bench", source=args.data, single=args.score_cases,
                                            multi=args.score_cases, size=max(64, config.resolution),
                                            previews=False, overwrite=True), progress=False)
        mask_types = tuple(name for name in args.score_mask_types.split(",") if name)
        report.update(fsmi_score_means=score_means(bench, work, summary.pipeline_dir, device, mask_types),
                      fsmi_score_mask_types=list(mask_types), score_wall_s=round(time.perf_counter() - started, 1))
    print(json.dumps(report.fields, indent=2))


if __name__ == "__main__":
    main()
