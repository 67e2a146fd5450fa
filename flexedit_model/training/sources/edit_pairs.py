"""Edit pairs read row by row from a ``datasets`` folder written with ``save_to_disk`` (MagicBrush,
InstructPix2Pix): the Arrow files are memory-mapped by ``datasets`` and a row's images are decoded only
when an example draws it.

Each example: the source image as the scene, the edited image as the target, the edit region (the
dataset's mask, or where the two images differ) with a ``random_walk`` free-shape mask inside it, the
instruction; no subject, and no text for the VLLM to say (these datasets name no object, so the
language loss leaves these rows out and only the diffusion loss trains on them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError

# A pixel belongs to the changed region when a channel moved by more than this (of 255): well above
# JPEG noise and the small drift of a regenerated background.
DIFF_THRESHOLD = 32
# Below this share of the image, a difference is noise: the whole image is the region (a global edit).
MIN_REGION_FRACTION = 0.005


def open_rows(path: str, kind: str, columns: frozenset[str], layout: str):
    """The ``train`` split (or the only table) of a ``save_to_disk`` folder, its image columns left
    undecoded, with ``columns`` present; else one line naming what is missing."""
    from datasets import Dataset, load_from_disk

    from fsmi_bench.benchmark.sources.hf_disk import _undecoded_images

    root = Path(path)
    if not root.is_dir():
        raise BadInputError(f"--data {kind}:{path}: datasets folder not found")
    try:
        loaded = load_from_disk(str(root))
    except Exception as error:  # datasets and pyarrow raise many types for a damaged folder
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise BadInputError(f"--data {kind}:{path} is not a folder written by datasets' save_to_disk "
                            f"({reason})") from None
    if not isinstance(loaded, Dataset):
        if "train" not in loaded:
            raise BadInputError(f"--data {kind}:{path} has splits {', '.join(sorted(loaded))} but no 'train'")
        loaded = loaded["train"]
    missing = sorted(columns - set(loaded.column_names))
    if missing:
        raise BadInputError(f"--data {kind}:{path} lacks the column(s) {', '.join(missing)} of {layout} "
                            f"(it has {', '.join(loaded.column_names) or 'none'})")
    if not len(loaded):
        raise BadInputError(f"--data {kind}:{path}: the train split has no rows, so no edit pairs")
    return _undecoded_images(loaded)


def diff_region(scene: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Where ``target`` differs from ``scene`` (same size): a channel moved by more than DIFF_THRESHOLD,
    specks opened away and the rest closed; the whole image when that is under MIN_REGION_FRACTION."""
    import cv2

    changed = (np.abs(scene.astype(np.int16) - target.astype(np.int16)).max(axis=2) > DIFF_THRESHOLD)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    changed = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, kernel).astype(bool)
    if changed.mean() < MIN_REGION_FRACTION:
        return np.ones(scene.shape[:2], bool)
    return changed


class EditPairExamples:
    """Example ``i``: row ``rng.integers(len(rows))`` read by ``read(row, where)`` -> (scene, target,
    region or None, instruction), all at the training resolution."""

    def __init__(self, rows, kind: str, path: str, read: Callable, resolution: int, seed: int = 0):
        self.rows, self.kind, self.path, self.read = rows, kind, path, read
        self.resolution, self.seed = resolution, seed

    def __getitem__(self, index: int):
        from flexedit_model.training.data import (
            TRAINING_SEED_OFFSET,
            WORKING_SIDE_FACTOR,
            TrainingExample,
            _random_walk,
            _square,
            _square_mask,
        )
        from flexedit_model.training.sources.pooled import shrink_photo

        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        number = int(rng.integers(len(self.rows)))
        where = f"{self.kind}:{self.path}: row {number}"
        try:
            row = self.rows[number]
        except Exception as error:  # pyarrow raises many types for damaged data
            raise BadInputError(f"{where} cannot be read ({type(error).__name__})") from None
        scene, target, region, instruction = self.read(row, where)
        if not isinstance(instruction, str) or not instruction.strip():
            raise BadInputError(f"{where}: the instruction is empty")
        working = WORKING_SIDE_FACTOR * self.resolution
        if target.shape != scene.shape:
            target = _resize_to(target, scene.shape)  # the pair's images differ in size: meet at the source's
        if region is None:
            region = diff_region(shrink_photo(scene, working), shrink_photo(target, working))
        size = self.resolution
        region = _square_mask(region, size)
        if not region.any():
            region = np.ones((size, size), bool)
        mask = _random_walk(region, int(rng.integers(2**31)))
        return TrainingExample(f"edit_{index:06d}", "edit", "single", _square(scene, size), _square(target, size),
                               mask, region, instruction.strip(), "", None, (f"{self.kind}:row {number}",),
                               self.kind)


def _resize_to(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from fsmi_bench.benchmark.compose import resize_rgb

    return resize_rgb(image, shape[1], shape[0])
