"""Mask understanding of trained FlexEdit pipelines, on more examples than ``gpu_flexedit.py`` measures.

For each pipeline folder (``fsmi train flexedit``'s OUT/pipeline, or ``gpu_flexedit.py``'s), prints one
JSON line with the mean IoU of the full mask it draws against the true one, per evaluation set of
``gpu_flexedit.py`` (``heldout``: held-out objects in their own photos; ``training``: training objects,
new masks; ``pasted``: held-out objects pasted on other photos), beside the IoU of the free-shape mask
itself and of its bounding box (what ``copy-paste`` fills), on the same examples. ``--first 16`` takes
examples that ``gpu_flexedit.py --eval-examples 16`` did not see, to check a comparison made there:

    .venv/bin/python benchmarks/flexedit_mask_iou.py runs/a/pipeline runs/b/pipeline --first 16 --count 48 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gpu_flexedit import EVALUATION_SETS, evaluation_sets, mask_understanding, reference_ious


def main() -> None:
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.data import load_training_content
    from fsmi_bench.errors import BadInputError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipelines", nargs="+", type=Path, help="pipeline folders to measure")
    parser.add_argument("--data", default="mini")
    parser.add_argument("--first", type=int, default=0, help="index of the first example of each set")
    parser.add_argument("--count", type=int, default=24, help="examples per set")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per drawing")
    parser.add_argument("--sets", default=",".join(EVALUATION_SETS),
                        help=f"comma-separated, of {', '.join(EVALUATION_SETS)}")
    args = parser.parse_args()
    names = [name for name in args.sets.split(",") if name]
    if not names or set(names) - set(EVALUATION_SETS) or args.count < 1 or args.first < 0:
        raise BadInputError(f"--sets takes names of {', '.join(EVALUATION_SETS)}; --count >= 1 and --first >= 0")
    missing = [str(path) for path in args.pipelines if not (path / "model_index.json").is_file()]
    if missing:
        raise BadInputError(f"not a FlexEdit pipeline folder (no model_index.json): {', '.join(missing)}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    content = load_training_content(args.data, "heldout"), load_training_content(args.data, "train")
    by_resolution: dict[int, dict] = {}
    for path in args.pipelines:
        pipeline = FlexEditPipeline.from_pretrained(path).to(device)
        pipeline.set_progress_bar_config(disable=True)
        resolution = pipeline.config.resolution
        if resolution not in by_resolution:
            by_resolution[resolution] = evaluation_sets(*content, resolution, args.count, args.first, names)
            print(json.dumps({"resolution": resolution, "first": args.first, "count": args.count, **{
                name: reference_ious(examples) for name, examples in by_resolution[resolution].items()}}), flush=True)
        print(json.dumps({"pipeline": str(path), "steps": args.steps, **{
            name: mask_understanding(pipeline, examples, args.steps)
            for name, examples in by_resolution[resolution].items()}}), flush=True)


if __name__ == "__main__":
    from fsmi_bench.errors import BadInputError

    try:
        main()
    except BadInputError as error:  # a bad folder or option: one line, exit 1
        sys.exit(f"error: {error}")
