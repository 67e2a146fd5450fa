"""The gallery's pictures: thumbnails, zooms on the edit region and difference maps, named by content.

A picture's file name is a digest of what it shows (the sha256 of its source files, its kind, size and
``PICTURE_STYLE``), so a picture on disk is reused only for the same content: reordering runs, a new
output, or another benchmark written into the same gallery folder can never show a stale picture.
Every image is opened through ``fsmi_bench.io.decode_image`` (the pixel limit applies); a file that
cannot be read becomes a marked cell of the page, never an aborted gallery.

Cheap by construction: each source is decoded once per case and shrunk first (OpenCV area averaging),
and the mask is drawn on the small image; the difference map is taken at full size (a one-pixel change
stays visible), then shrunk keeping its peaks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_bytes, decode_image

PICTURE_STYLE = "2"  # change it whenever the drawing changes: every picture is then made again
MASK_COLOUR = (255, 40, 40)  # the drawn mask: a red fill at MASK_ALPHA with a solid outline
MASK_ALPHA = 0.35
REGION_COLOUR = (0, 220, 255)  # the edit region's outline on a difference map
DIFFERENCE_FULL_SCALE = 64  # a channel difference of this many levels (of 255) or more is drawn white
ZOOM_MARGIN = 0.25  # the zoom shows the edit region's box grown by this fraction of its longer side
ZOOM_MIN_SIDE = 32  # px of the full-size image: the closest a zoom goes


def picture_name(kind: str, size: int, *sources: str) -> str:
    """The file name (under the thumbnails folder) of a picture of ``kind`` made from ``sources`` (sha256)."""
    digest = hashlib.sha256(json.dumps([PICTURE_STYLE, kind, size, *sources]).encode()).hexdigest()
    return f"{digest[:2]}/{digest[2:34]}-{kind}.jpg"


@dataclass(frozen=True)
class Source:
    """An image file and its sha256 (from the manifest; None: computed when it is read)."""

    path: Path
    sha256: str | None = None


@dataclass(frozen=True)
class CasePictures:
    """What the page needs of one case: its images, each row's mask and each output (by key)."""

    scene: Source
    gt: Source
    region: Source
    subject: Source | None
    masks: dict[str, Source]  # mask type -> mask
    # (method number, mask type) -> (file, its sha256 as the run recorded it, or None: read to know it)
    outputs: dict[tuple[int, str], tuple[Path, str | None]] = field(default_factory=dict)


class _Loaded:
    """The case's images, each decoded once, on first use."""

    def __init__(self):
        self._images: dict[Path, np.ndarray] = {}

    def rgb(self, source: Source | Path, data: bytes | None = None) -> np.ndarray:
        path = source.path if isinstance(source, Source) else source
        if path not in self._images:
            opened = decode_image(io.BytesIO(data) if data is not None else path, f"image {path}",
                                  f"cannot read image {path}")
            self._images[path] = np.asarray(opened if opened.mode == "RGB" else opened.convert("RGB"))
        return self._images[path]

    def mask(self, source: Source) -> np.ndarray:
        if source.path not in self._images:
            opened = decode_image(source.path, f"mask {source.path}", f"cannot read mask {source.path}")
            self._images[source.path] = np.asarray(opened.convert("L")) > 127
        return self._images[source.path]


def make_case_pictures(case: CasePictures, folder: Path, size: int) -> dict:
    """Write the case's missing pictures into ``folder``; returns what each cell of its rows shows.

    {"gt": cell, "subject": cell or None, "input": {mask type: cell}, "outputs": {(method, mask type): cell},
    "sha256": {(method, mask type): output sha256}}, a cell being {"thumb", "zoom", "diff": picture names}
    (those that apply) or {"bad": one line saying why the file could not be shown}.
    """
    loaded = _Loaded()

    def picture(kind: str, sources: tuple[str, ...], draw) -> str:
        name = picture_name(kind, size, *sources)
        target = folder / name
        if not target.is_file():
            atomic_write_bytes(target, _jpeg(draw()))
        return name

    def cell(make) -> dict:
        try:
            return make()
        except (BadInputError, OSError) as error:
            return {"bad": str(error) if isinstance(error, BadInputError) else f"cannot read: {error}"}

    boxes: list = []

    def box():
        if not boxes:
            boxes.append(zoom_box(loaded.mask(case.region)))
        return boxes[0]

    region_sha = case.region.sha256
    gt_sha = case.gt.sha256
    result = {
        "gt": cell(lambda: {
            "thumb": picture("image", (gt_sha,), lambda: shrink(loaded.rgb(case.gt), size)),
            "zoom": picture("zoom", (gt_sha, region_sha), lambda: zoom(loaded.rgb(case.gt), box(), size))}),
        "subject": None if case.subject is None else cell(lambda: {
            "thumb": picture("image", (case.subject.sha256,), lambda: shrink(loaded.rgb(case.subject), size))}),
        "input": {}, "outputs": {}, "sha256": {}}
    for mask_type, mask in case.masks.items():
        result["input"][mask_type] = cell(lambda: {
            "thumb": picture("masked", (case.scene.sha256, mask.sha256),
                             lambda: with_mask(loaded.rgb(case.scene), loaded.mask(mask), size)),
            "zoom": picture("masked-zoom", (case.scene.sha256, mask.sha256, region_sha),
                            lambda: with_mask(*_crop_both(loaded.rgb(case.scene), loaded.mask(mask), box()), size,
                                              enlarge=True))})
    for key, (path, recorded) in case.outputs.items():
        def output_cell():
            if recorded is not None:
                names = {cell_key: picture_name(kind, size, *sources)
                         for cell_key, kind, sources in _output_pictures(recorded, gt_sha, region_sha)}
                if all((folder / name).is_file() for name in names.values()):
                    result["sha256"][key] = recorded  # every picture is there: the file need not be read
                    return names
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            result["sha256"][key] = sha

            def image():
                return _as_scene_size(loaded.rgb(path, data), loaded.rgb(case.gt))
            draw = {"image": lambda: shrink(image(), size), "zoom": lambda: zoom(image(), box(), size),
                    "diff": lambda: difference(image(), loaded.rgb(case.gt), loaded.mask(case.region), size)}
            return {cell_key: picture(kind, sources, draw[kind])
                    for cell_key, kind, sources in _output_pictures(sha, gt_sha, region_sha)}
        result["outputs"][key] = cell(output_cell)
    return result


def _output_pictures(sha: str, gt_sha: str, region_sha: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(cell key, picture kind, sources) of each picture of an output."""
    return [("thumb", "image", (sha,)), ("zoom", "zoom", (sha, region_sha)),
            ("diff", "diff", (sha, gt_sha, region_sha))]


def _jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _fit(width: int, height: int, size: int, enlarge: bool = False) -> tuple[int, int]:
    scale = size / max(width, height)
    if scale >= 1 and not enlarge:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(image: np.ndarray, size: int, enlarge: bool = False) -> np.ndarray:
    """RGB (or grayscale) uint8 image scaled to fit ``size`` x ``size``: halved by area averaging while it
    is twice the target or more (OpenCV's fast path), then bilinear; bicubic when enlarging (``enlarge``;
    otherwise a smaller image is kept as it is)."""
    import cv2

    height, width = image.shape[:2]
    target = _fit(width, height, size, enlarge)
    if target == (width, height):
        return image
    image = np.ascontiguousarray(image)
    while width >= 2 * target[0] and height >= 2 * target[1]:
        width, height = width // 2, height // 2
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if (width, height) == target:
        return image
    return cv2.resize(image, target, interpolation=cv2.INTER_LINEAR if target[0] < width else cv2.INTER_CUBIC)


def _coverage(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """How much (0-255) of each small pixel the bool ``mask`` covers, uint8 (height, width)."""
    return shrink(mask.view(np.uint8) * np.uint8(255), max(width, height), enlarge=True)


def _outline(inside: np.ndarray) -> np.ndarray:
    """The two-pixel border of a bool area (its 3 x 3 dilation less its 3 x 3 erosion)."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    area = inside.astype(np.uint8)
    return cv2.dilate(area, kernel).astype(bool) & ~cv2.erode(area, kernel).astype(bool)


def with_mask(image: np.ndarray, mask: np.ndarray, size: int, enlarge: bool = False) -> np.ndarray:
    """The image shrunk to ``size``, then the mask drawn on it: a translucent fill where it covers a small
    pixel, and a solid outline that keeps thin and open masks visible at this size."""
    small = shrink(image, size, enlarge)
    coverage = _coverage(mask, small.shape[1], small.shape[0])
    colour = np.array(MASK_COLOUR, dtype=np.float32)
    weight = (coverage.astype(np.float32) * (MASK_ALPHA / 255))[..., None]
    drawn = small * (1 - weight) + colour * weight
    drawn[_outline(coverage > 0)] = colour  # any touched pixel: thin strokes stay visible
    return drawn.round().clip(0, 255).astype(np.uint8)


def zoom_box(region: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of what the zooms show: the edit region's box grown on each side by
    ``ZOOM_MARGIN`` of its longer side, each side at least ``ZOOM_MIN_SIDE`` px, kept inside the image
    (the whole image if the region is empty)."""
    height, width = region.shape
    rows, columns = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return 0, 0, height, width
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    margin = math.ceil(ZOOM_MARGIN * max(bottom - top, right - left))

    def span(start: int, end: int, limit: int) -> tuple[int, int]:
        side = min(max(ZOOM_MIN_SIDE, end - start + 2 * margin), limit)
        start = min(max(0, (start + end - side) // 2), limit - side)
        return start, start + side

    (top, bottom), (left, right) = span(top, bottom, height), span(left, right, width)
    return top, left, bottom, right


def _crop_both(image: np.ndarray, mask: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
    top, left, bottom, right = box
    return image[top:bottom, left:right], mask[top:bottom, left:right]


def zoom(image: np.ndarray, box, size: int) -> np.ndarray:
    """The ``zoom_box`` part of the image, scaled to fit ``size`` (enlarged when smaller)."""
    top, left, bottom, right = box
    return shrink(np.ascontiguousarray(image[top:bottom, left:right]), size, enlarge=True)


def _as_scene_size(output: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """An output of another size than the scene (an import) mapped to it, as scoring does (bicubic)."""
    if output.shape == gt.shape:
        return output
    from PIL import Image

    return np.asarray(Image.fromarray(output).resize((gt.shape[1], gt.shape[0]), Image.Resampling.BICUBIC))


def _hot_table() -> np.ndarray:
    """Channel difference (0-255) -> RGB on a black-red-yellow-white scale, white from
    ``DIFFERENCE_FULL_SCALE`` up."""
    value = np.minimum(np.arange(256, dtype=np.float32) / DIFFERENCE_FULL_SCALE, 1.0)[:, None]
    rgb = np.clip(3 * value - np.array([0.0, 1.0, 2.0], dtype=np.float32), 0.0, 1.0)
    return (rgb * 255).round().astype(np.uint8)


_HOT = _hot_table()


def difference(output: np.ndarray, gt: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
    """|output - GT| (largest channel difference; ``DIFFERENCE_FULL_SCALE`` levels and above white) on a
    black-red-yellow-white scale, shrunk keeping each block's largest difference, with the edit region's
    outline in cyan."""
    import cv2

    levels = cv2.absdiff(np.ascontiguousarray(output), np.ascontiguousarray(gt))
    height, width = levels.shape[:2]
    small_width, small_height = _fit(width, height, size)
    factor = math.ceil(max(width / small_width, height / small_height))
    if factor > 1:  # a block's largest difference survives the averaging below
        levels = cv2.dilate(levels, np.ones((factor, factor), np.uint8))
    small = shrink(levels, size).max(axis=2)
    picture = _HOT[small]
    picture[_outline(_coverage(region, small_width, small_height) > 0)] = REGION_COLOUR
    return picture
