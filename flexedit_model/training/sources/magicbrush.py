"""``--data magicbrush:PATH``: MagicBrush (osunlp/MagicBrush) as ``datasets`` writes it with ``save_to_disk``.

Columns, as on the dataset card (huggingface.co/datasets/osunlp/MagicBrush, ``dataset_info.features``):
``img_id`` (string, the COCO id), ``turn_index`` (int32), ``source_img`` (Image: the real photo at turn 1,
the previous turn's result after), ``mask_img`` (Image), ``instruction`` (string), ``target_img`` (Image);
splits ``train`` (8,807 rows) and ``dev`` (528); only ``train`` is used.

``mask_img`` is the source image as DALL-E 2's editor left it, RGBA with the edited area erased: the
region is where alpha is not 255 (the dataset author's conversion, OSU-NLP-Group/MagicBrush issue #10:
``image_bw = (alpha_channel != 255)``), and the mask may have another size than the source, so it is
resized to it (nearest neighbour). A mask without alpha (a black-and-white image) marks the region in
white. An empty region falls back to where source and target differ.
"""

from __future__ import annotations

import numpy as np

from flexedit_model.training.sources.edit_pairs import EditPairExamples, open_rows
from fsmi_bench.errors import BadInputError

COLUMNS = frozenset({"img_id", "turn_index", "source_img", "mask_img", "instruction", "target_img"})
LAYOUT = "MagicBrush (img_id, turn_index, source_img, mask_img, instruction, target_img)"


def edit_region(mask_image, size: tuple[int, int]) -> np.ndarray:
    """The edit region (bool, ``size`` = (width, height)) of a MagicBrush ``mask_img`` (a PIL image)."""
    from PIL import Image

    if mask_image.mode in ("RGBA", "LA", "PA") or (mask_image.mode == "P" and "transparency" in mask_image.info):
        alpha = mask_image.convert("RGBA").getchannel("A")
        region = Image.fromarray((np.asarray(alpha) != 255).astype(np.uint8) * 255)
    else:
        white = np.asarray(mask_image.convert("RGB")).min(axis=2) >= 250
        region = Image.fromarray(white.astype(np.uint8) * 255)
    if region.size != size:
        region = region.resize(size, Image.Resampling.NEAREST)
    return np.asarray(region) > 127


def read_row(row: dict, where: str):
    from fsmi_bench.benchmark.sources.hf_disk import _open_cell, _rgb

    scene = _rgb(row["source_img"], where, "source_img")
    target = _rgb(row["target_img"], where, "target_img")
    try:
        region = edit_region(_open_cell(row["mask_img"], where, "mask_img"), (scene.shape[1], scene.shape[0]))
    except (ValueError, OSError) as error:
        raise BadInputError(f"{where}: column 'mask_img' cannot be read as a mask ({error})") from None
    return scene, target, region if region.any() else None, row["instruction"]


def open_magicbrush(path: str, recipe) -> EditPairExamples:
    rows = open_rows(path, "magicbrush", COLUMNS, LAYOUT)
    return EditPairExamples(rows, "magicbrush", path, read_row, recipe.resolution, recipe.seed)
