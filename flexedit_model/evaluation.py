"""Measuring what a FlexEdit pipeline has learnt: can it read a free-shape mask?

The mask task of training (``training.data``) asks the model to draw the full mask of the object that
a ``random_walk`` mask points at. Here the same task is posed on examples never drawn in training, and
what the pipeline draws is compared with the true mask (IoU), beside two references on the same
examples: the free-shape mask itself and its bounding box (what ``copy-paste`` fills). Three sets
(``evaluation_sets``): held-out objects in their own photos, training objects with new masks, and
held-out objects pasted on other photos. ``mask_sensitivity`` measures whether the condition the UNet
reads changes when only the mask moves. The study that uses these lives in
``research/flexedit_training/``; these functions are the library it calls, tested in-process.

Masks are bool (H, W) arrays, True = inside; IoUs are in [0, 1].
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


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


def by_label(examples, scores: list[float], box_scores: list[float]) -> dict:
    """Per label of the object to draw: how many examples, the mean drawn IoU and the box's."""
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.label, []).append(index)
    return {label: {"examples": len(indices), "iou": round(float(np.mean([scores[i] for i in indices])), 4),
                    "box": round(float(np.mean([box_scores[i] for i in indices])), 4)}
            for label, indices in sorted(groups.items())}


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
            states, _ = pipeline.vllm_states(example.scene, mask, example.instruction)
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

    from flexedit_model.training.data import mask_image
    from flexedit_model.vllm import mark_mask
    from fsmi_bench.io import save_png

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
