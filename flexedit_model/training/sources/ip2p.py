"""``--data ip2p:PATH``: InstructPix2Pix's generated pairs as ``datasets`` writes them with ``save_to_disk``.

Columns, as on the dataset card (huggingface.co/datasets/timbrooks/instructpix2pix-clip-filtered,
``dataset_info.features``): ``original_prompt`` (string), ``original_image`` (Image), ``edit_prompt``
(string, the instruction), ``edited_prompt`` (string), ``edited_image`` (Image); one split, ``train``
(313,010 rows). diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py`` reads the same three
columns (``original_image``, ``edit_prompt``, ``edited_image``) of this dataset.

The pairs come with no mask: the edit region is where the two images differ (``edit_pairs.diff_region``),
the whole image for a global edit (a style change moves every pixel a little, nothing much).
"""

from __future__ import annotations

from flexedit_model.training.sources.edit_pairs import EditPairExamples, open_rows

COLUMNS = frozenset({"original_prompt", "original_image", "edit_prompt", "edited_prompt", "edited_image"})
LAYOUT = "InstructPix2Pix (original_prompt, original_image, edit_prompt, edited_prompt, edited_image)"


def read_row(row: dict, where: str):
    from fsmi_bench.benchmark.sources.hf_disk import _rgb

    return (_rgb(row["original_image"], where, "original_image"), _rgb(row["edited_image"], where, "edited_image"),
            None, row["edit_prompt"])


def open_ip2p(path: str, recipe) -> EditPairExamples:
    rows = open_rows(path, "ip2p", COLUMNS, LAYOUT)
    return EditPairExamples(rows, "ip2p", path, read_row, recipe.resolution, recipe.seed)
