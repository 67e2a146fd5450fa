"""Mask understanding of trained FlexEdit pipelines, on more examples than ``gpu_flexedit.py`` measures.

For each pipeline folder (``fsmi train flexedit``'s OUT/pipeline, or ``gpu_flexedit.py``'s), prints one
JSON line with the mean IoU of the full mask it draws against the true one, per evaluation set of
``gpu_flexedit.py`` (``heldout``: held-out objects in their own photos; ``training``: training objects,
new masks; ``pasted``: held-out objects pasted on other photos), beside the IoU of the free-shape mask
itself and of its bounding box (what ``copy-paste`` fills), on the same examples. ``--first 16`` takes
examples that ``gpu_flexedit.py --eval-examples 16`` did not see, to check a comparison made there.

Each pipeline's figures per set also pair it with the box example by example: ``minus_box`` is the mean
of (drawn IoU - box IoU), ``minus_box_95ci`` its 95 % bootstrap interval over the examples (how much the
comparison could move with other examples; not how much it moves with another training seed), and
``beats_box`` the share of examples where the drawing is closer to the true mask than the box.
``by_label`` gives the examples, the mean IoU and the box's per label of the object to draw: a source's
held-out split can hold only a few objects (``mini``: 3), and a mean over them can hide that the model
wins on some and loses on others.
``--drawings DIR`` writes DIR/<set>_masks.png: the first 8 examples, with the box and each pipeline's
drawing (columns numbered in the order the pipelines are given).

    .venv/bin/python research/flexedit_training/flexedit_mask_iou.py runs/a/pipeline runs/b/pipeline --first 16 --count 48 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flexedit_model.evaluation import (
    EVALUATION_SETS,
    against_box,
    box_ious,
    box_of,
    by_label,
    evaluation_sets,
    mask_understanding,
    reference_ious,
    save_drawings,
)


def main() -> None:
    from fsmi_bench.errors import BadInputError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipelines", nargs="+", type=Path, help="pipeline folders to measure")
    parser.add_argument("--data", default="mini")
    parser.add_argument("--first", type=int, default=0, help="index of the first example of each set")
    parser.add_argument("--count", type=int, default=24, help="examples per set")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per drawing")
    parser.add_argument("--sets", default=",".join(EVALUATION_SETS),
                        help=f"comma-separated, of {', '.join(EVALUATION_SETS)}")
    parser.add_argument("--drawings", type=Path, default=None,
                        help="write DIR/<set>_masks.png: box and drawings of the first 8 examples")
    args = parser.parse_args()
    names = [name for name in args.sets.split(",") if name]
    if not names or set(names) - set(EVALUATION_SETS) or args.count < 1 or args.first < 0:
        raise BadInputError(f"--sets takes names of {', '.join(EVALUATION_SETS)}; --count >= 1 and --first >= 0")
    if args.drawings is not None and args.drawings.exists() and not args.drawings.is_dir():
        raise BadInputError(f"--drawings takes a folder; {args.drawings} is a file")
    missing = [str(path) for path in args.pipelines if not (path / "model_index.json").is_file()]
    if missing:
        raise BadInputError(f"not a FlexEdit pipeline folder (no model_index.json): {', '.join(missing)}")
    # Torch and the model only once the options are known to be good: a bad option answers at once.
    import torch

    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.data import load_training_content

    device = "cuda" if torch.cuda.is_available() else "cpu"
    content = load_training_content(args.data, "heldout"), load_training_content(args.data, "train")
    by_resolution: dict[int, dict] = {}
    box_scores: dict[int, dict[str, list]] = {}  # resolution -> set -> the box's IoU per example
    drawn: dict[int, dict[str, dict[str, list]]] = {}  # resolution -> set -> column -> masks
    for number, path in enumerate(args.pipelines, start=1):
        pipeline = FlexEditPipeline.from_pretrained(path).to(device)
        pipeline.set_progress_bar_config(disable=True)
        resolution = pipeline.config.resolution
        if resolution not in by_resolution:
            by_resolution[resolution] = evaluation_sets(*content, resolution, args.count, args.first, names)
            box_scores[resolution] = {name: box_ious(examples) for name, examples in by_resolution[resolution].items()}
            drawn[resolution] = {name: {"copy-paste box": [box_of(e.mask) for e in examples[:8]]}
                                 for name, examples in by_resolution[resolution].items()}
            print(json.dumps({"resolution": resolution, "first": args.first, "count": args.count, **{
                name: reference_ious(examples) for name, examples in by_resolution[resolution].items()}}), flush=True)
        figures = {}
        for name, examples in by_resolution[resolution].items():
            scores, drawings = [], []
            figures[name] = {**mask_understanding(pipeline, examples, args.steps, drawings, scores),
                             **against_box(scores, box_scores[resolution][name]),
                             "by_label": by_label(examples, scores, box_scores[resolution][name])}
            drawn[resolution][name][f"pipeline {number}"] = drawings[:8]
        print(json.dumps({"pipeline": str(path), "steps": args.steps, **figures}), flush=True)
    if args.drawings is not None:
        args.drawings.mkdir(parents=True, exist_ok=True)
        for resolution, sets in drawn.items():
            suffix = "" if len(drawn) == 1 else f"_{resolution}px"
            for name, columns in sets.items():
                save_drawings(args.drawings / f"{name}_masks{suffix}.png", by_resolution[resolution][name], columns)


if __name__ == "__main__":
    from fsmi_bench.errors import BadInputError

    try:
        main()
    except BadInputError as error:  # a bad folder or option: one line, exit 1
        sys.exit(f"error: {error}")
