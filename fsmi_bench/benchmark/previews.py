"""Pictures of a benchmark: contact sheets of masks over scenes, and one case laid out side by side.

All functions return or write RGB uint8 images; captions are drawn with PIL's default font so that
nothing beyond Pillow is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fsmi_bench.io import load_mask, load_rgb, save_png

TILE = 192
CAPTION_HEIGHT = 18
BACKGROUND = (255, 255, 255)


MASK_COLOR = (40, 230, 40)  # green stands out on most photos, the red ARC2017 tote included
REGION_COLOR = (64, 160, 255)


def overlay(scene: np.ndarray, mask: np.ndarray, color=MASK_COLOR) -> np.ndarray:
    """The mask drawn over the scene: a translucent fill and a solid outline."""
    from fsmi_bench.benchmark.masks.draw import overlay_masks_on_scene

    return overlay_masks_on_scene(scene, mask, color=color)


def fit_tile(image: np.ndarray, size: int = TILE) -> np.ndarray:
    """``image`` scaled to fit a ``size`` x ``size`` tile, centred on white."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    resized = Image.fromarray(image).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                            Image.Resampling.BILINEAR)
    tile = Image.new("RGB", (size, size), BACKGROUND)
    tile.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return np.asarray(tile)


def captioned(image: np.ndarray, caption: str) -> np.ndarray:
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + CAPTION_HEIGHT), BACKGROUND)
    canvas.paste(Image.fromarray(image), (0, CAPTION_HEIGHT))
    ImageDraw.Draw(canvas).text((3, 3), caption[: image.shape[1] // 6], fill=(0, 0, 0))
    return np.asarray(canvas)


def grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Lay out tiles row by row on white; each cell is as large as the largest tile."""
    tile_height = max(tile.shape[0] for row in rows for tile in row)
    tile_width = max(tile.shape[1] for row in rows for tile in row)
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (tile_height + gap) + gap, columns * (tile_width + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = gap + r * (tile_height + gap), gap + c * (tile_width + gap)
            sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def mask_contact_sheet(items: list[tuple[str, np.ndarray, dict[str, np.ndarray]]], mask_types) -> np.ndarray:
    """A row per mask type, a column per item (name, scene, {mask_type: mask}); masks over scenes."""
    rows = []
    for mask_type in mask_types:
        row = [captioned(fit_tile(overlay(scene, masks[mask_type])), f"{mask_type} | {name}")
               for name, scene, masks in items if mask_type in masks]
        if row:
            rows.append(row)
    return grid(rows)


def _sample_case_ids(rows, count: int) -> list[str]:
    """Evenly spread case ids, both kinds included."""
    case_ids = sorted({row.case_id for row in rows})
    if len(case_ids) <= count:
        return case_ids
    picks = np.linspace(0, len(case_ids) - 1, count).round().astype(int)
    return [case_ids[i] for i in picks]


def write_previews(root: Path, rows, columns: int = 8) -> list[Path]:
    """``previews/masks.png`` (a row per mask type over sample cases) and ``previews/cases.png``
    (scene, subject, GT and edit region of sample cases)."""
    from fsmi_bench.benchmark.masks import MASK_CONDITIONS

    by_case: dict[str, list] = {}
    for row in rows:
        by_case.setdefault(row.case_id, []).append(row)
    items = []
    for case_id in _sample_case_ids(rows, columns):
        case_rows = by_case[case_id]
        scene = load_rgb(root / case_rows[0].scene)
        items.append((case_id, scene, {r.mask_type: load_mask(root / r.mask) for r in case_rows}))
    written = [root / "previews" / "masks.png"]
    save_png(written[0], mask_contact_sheet(items, MASK_CONDITIONS))
    case_tiles = [case_strip(root, by_case[case_id], with_masks=False) for case_id in _sample_case_ids(rows, 6)]
    written.append(root / "previews" / "cases.png")
    save_png(written[1], grid([[tile] for tile in case_tiles]))
    return written


def case_strip(root: Path, case_rows, with_masks: bool = True, per_row: int = 7) -> np.ndarray:
    """One case side by side: scene, subject, GT and edit region, then each mask over the scene
    (rows of at most ``per_row`` tiles)."""
    first = case_rows[0]
    scene = load_rgb(root / first.scene)
    tiles = [captioned(fit_tile(scene), f"{first.case_id} scene")]
    if first.subject:
        tiles.append(captioned(fit_tile(load_rgb(root / first.subject)), "subject"))
    tiles.append(captioned(fit_tile(load_rgb(root / first.gt)), "GT"))
    region = load_mask(root / first.region)
    tiles.append(captioned(fit_tile(overlay(scene, region, color=REGION_COLOR)), "edit region"))
    if with_masks:
        for row in case_rows:
            tiles.append(captioned(fit_tile(overlay(scene, load_mask(root / row.mask))),
                                   f"{row.mask_type} IoU {row.mask_iou:.2f}"))
    strip = grid([tiles[i:i + per_row] for i in range(0, len(tiles), per_row)])
    title = f"{first.kind} / {first.op} / {first.scenario} / {first.complexity}: {first.instruction}"
    return captioned(strip, title)


def show_case(bench_dir: str | Path, case_id: str, out: str | Path) -> Path:
    """Write ``out``: the case ``case_id`` of the benchmark in ``bench_dir`` laid out side by side."""
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.errors import BadInputError

    benchmark = load_benchmark(bench_dir, verify=False)
    case_rows = benchmark.rows_for(case_id)
    if not case_rows:
        import difflib

        close = difflib.get_close_matches(case_id, benchmark.case_ids(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInputError(f"no case {case_id!r} in {bench_dir}{hint}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise BadInputError(f"--out must be a .png file, got {out}")
    save_png(out, case_strip(benchmark.root, case_rows))
    return out
