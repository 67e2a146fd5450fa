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

Run by benchmarks/gpu_flexedit.sh on one GPU (config ``small``); on CPU, for the learning signal:
    .venv/bin/python benchmarks/gpu_flexedit.py --config cpu-check --train-seconds 600 --out runs/cpu-check
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def box_of(mask: np.ndarray) -> np.ndarray:
    """The bounding box of a bool mask as a bool mask (copy-paste's reading of a free-shape mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = np.zeros_like(mask)
    if rows.size:
        box[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1] = True
    return box


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def mean_iou(pairs) -> float:
    return round(float(np.mean([iou(a, b) for a, b in pairs])), 4)


def box_ious(examples) -> list[float]:
    """Per example, the IoU of the free-shape mask's box (what copy-paste fills) against the true region."""
    return [iou(box_of(example.mask), example.region) for example in examples]


EVALUATION_SETS = ("heldout", "training", "pasted")


def evaluation_sets(heldout, train, resolution: int, count: int, first: int = 0,
                    names=EVALUATION_SETS) -> dict[str, list]:
    """Mask-task examples ``first`` to ``first + count - 1`` of the three evaluation sets, made from a
    source's held-out and training content (``load_training_content``) and drawn from the evaluation's
    own seed stream (these masks are never drawn in training):
    - ``heldout``: held-out objects in their own photos;
    - ``training``: training objects in their own photos, new masks (tells a model that has not learnt
      to read masks from one that has but does not carry it to objects it never saw);
    - ``pasted``: held-out objects cut out and pasted at random places and sizes on other photos (unseen
      objects without the small-object, cluttered-photo look of the few held-out photos).
    ``names`` picks the sets to make, in that order."""
    from flexedit_model.training.data import TrainingExamples

    made_from = {"heldout": (heldout, None), "training": (train, None), "pasted": (heldout, {"pasted": 1.0})}
    sets = {}
    for name in names:
        content, mix = made_from[name]
        stream = TrainingExamples(content, resolution, seed=12345, mask_task_fraction=1.0, mask_task_mix=mix)
        sets[name] = [stream[index] for index in range(first, first + count)]
    return sets


def against_box(scores: list[float], box_scores: list[float]) -> dict:
    """A pipeline's per-example IoUs paired with the box's on the same examples."""
    from scipy.stats import bootstrap

    differences = np.asarray(scores) - np.asarray(box_scores)
    figures = {"minus_box": round(float(differences.mean()), 4),
               "beats_box": round(float((differences > 0).mean()), 4)}
    if len(differences) > 1 and differences.std() > 0:  # the bootstrap needs spread to resample
        interval = bootstrap((differences,), np.mean, confidence_level=0.95, n_resamples=2000,
                             method="percentile", rng=np.random.default_rng(0)).confidence_interval
        figures["minus_box_95ci"] = [round(float(interval.low), 4), round(float(interval.high), 4)]
    return figures


def reference_ious(examples) -> dict[str, float]:
    """Mean IoU against the true region of the free-shape mask itself and of its box (copy-paste)."""
    return {"free_shape_mask": mean_iou((e.mask, e.region) for e in examples),
            "copy_paste_box": round(float(np.mean(box_ious(examples))), 4)}


def mask_understanding(pipeline, examples, steps: int, drawings: list | None = None,
                       scores: list | None = None) -> dict:
    """Mean IoU (and the mean drawn-mask coverage) of the drawn full masks over mask-task examples;
    the drawn masks are appended to ``drawings`` and the per-example IoUs to ``scores`` when given."""
    from flexedit_model.training.data import mask_from_image

    ious, coverage = [], []
    for example in examples:
        drawn = mask_from_image(pipeline(example.scene, example.mask, example.instruction, seed=0,
                                         num_inference_steps=steps).image)
        ious.append(iou(drawn, example.region))
        coverage.append(float(drawn.mean()))
        if drawings is not None:
            drawings.append(drawn)
    if scores is not None:
        scores.extend(ious)
    return {"iou": round(float(np.mean(ious)), 4), "drawn_coverage": round(float(np.mean(coverage)), 4)}


def moved_mask(mask: np.ndarray) -> np.ndarray:
    """A box of a fifth of the image's side in the quadrant opposite the mask's centre."""
    side = mask.shape[0]
    rows, cols = np.nonzero(mask)
    top = int(side * 0.65) if rows.mean() < side / 2 else int(side * 0.15)
    left = int(side * 0.65) if cols.mean() < side / 2 else int(side * 0.15)
    moved = np.zeros_like(mask)
    moved[top: top + side // 5, left: left + side // 5] = True
    return moved


def mask_sensitivity(pipeline, examples) -> dict:
    """Does the condition c read the mask? Relative change |c - c'| / |c| when only the mask moves
    (same scene, mask moved to the opposite quadrant), beside the change when scene and mask change
    (the next example). A model that ignores the mask scores 0 on the first. The same two figures
    for the VLLM's <img_i> states and the Q-Former's e (``*_vllm_states``, ``*_qformer_e``) show
    where along VLLM -> Q-Former -> MEA a mask signal is lost."""
    import torch

    def stages(example, mask) -> list:
        with torch.no_grad():
            # Private step of the pipeline (as in bench_flexedit_overhead.py): the states before the Q-Former.
            states, _ = pipeline._vllm_states(example.scene, mask, example.instruction, None, False)
            edit_embeddings = pipeline.model.qformer(states)
        condition = pipeline.encode_condition(example.scene, mask, example.instruction)[0]
        return [tensor.float().flatten() for tensor in (condition, states, edit_embeddings)]

    def change(new, base) -> float:
        return float(torch.linalg.norm(new - base) / torch.linalg.norm(base))

    moved, other = [], []
    for example, neighbour in zip(examples, examples[1:] + examples[:1]):
        base = stages(example, example.mask)
        moved.append([change(*pair) for pair in zip(stages(example, moved_mask(example.mask)), base)])
        other.append([change(*pair) for pair in zip(stages(neighbour, neighbour.mask), base)])
    figures = {}
    for name, values in (("mask_moved", moved), ("other_scene", other)):
        for suffix, value in zip(("", "_vllm_states", "_qformer_e"), np.mean(values, axis=0)):
            figures[name + suffix] = round(float(value), 4)
    return figures


def save_drawings(path: Path, examples, columns: dict[str, list], count: int = 8, min_side: int = 128) -> None:
    """One row per example: the scene with its free-shape mask marked (cyan), the true mask, then one column
    per entry of ``columns`` (name -> bool masks), each labelled. Tiles smaller than ``min_side`` are
    enlarged (nearest pixel) so that the labels fit and small masks can be seen."""
    from PIL import Image, ImageDraw

    from fsmi_bench.io import save_png
    from flexedit_model.training.data import mask_image
    from flexedit_model.vllm import mark_mask

    rows = []
    for index, example in enumerate(examples[:count]):
        tiles = [mark_mask(example.scene, example.mask), mask_image(example.region)]
        tiles += [mask_image(masks[index]) for masks in columns.values()]
        rows.append(np.concatenate(tiles, axis=1))
    side = examples[0].scene.shape[0]
    scale = max(1, -(-min_side // side))
    sheet = Image.fromarray(np.concatenate(rows, axis=0).repeat(scale, axis=0).repeat(scale, axis=1))
    side *= scale
    draw = ImageDraw.Draw(sheet)
    for column, name in enumerate(["input (mask in cyan)", "true mask", *columns]):
        draw.text((column * side + 3, 2), name, fill=(0, 255, 0))
    save_png(path, np.asarray(sheet))


def loss_points(loss_csv: Path, count: int = 8) -> list[dict]:
    """``count`` evenly spaced rows of the loss curve (step, total, diffusion, language, layout loss)."""
    with open(loss_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    picks = sorted({round(index) for index in np.linspace(0, len(rows) - 1, min(count, len(rows)))})
    keys = ("step", "loss", "diffusion_loss", "language_loss", "layout_loss")
    return [{key: float(rows[index][key]) for key in keys if rows[index].get(key)} for index in picks]


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
    from fsmi_bench.methods import METHODS
    from fsmi_bench.metrics.specs import WEIGHTLESS_METRICS
    from fsmi_bench.run_engine import RunConfig, run_method
    from fsmi_bench.scoring import ScoreConfig, score_run

    if "flexedit" not in METHODS:
        METHODS.register("flexedit", "flexedit_model.method:FlexEditMethod", "FlexEdit", needs=("weights",))
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
        from fsmi_bench.build import BuildConfig, build_benchmark

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
