"""``fsmi generate-masks``: (re)make free-shape masks for a benchmark or for any folder of images
with region masks, and draw a contact sheet of them."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import ensure_writable_dir, load_mask, load_rgb, save_png, write_jsonl

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SHEET_COLUMNS = 8


def parse_types(types: str | None):
    """Mask types from a comma-separated list (default: the 9 evaluation conditions)."""
    from fsmi_bench.benchmark.masks import ALL_MASK_TYPES, MASK_CONDITIONS, MASK_GENERATORS

    if not types:
        return MASK_CONDITIONS
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    for mask_type in chosen:
        if mask_type not in ALL_MASK_TYPES:
            raise BadInputError(MASK_GENERATORS.unknown_message(mask_type))
    return chosen


def regenerate_benchmark_masks(bench_dir: str | Path, types: str | None = None, seed: int | None = None,
                               sheet: str | Path | None = None) -> Path:
    """Redraw the masks of the given types in a built benchmark, update its manifest, write a sheet.

    With ``seed`` the masks are drawn from new per-case seeds (derived from ``seed`` as ``fsmi build``
    does); without it, from each case's recorded seed, which reproduces the build's masks exactly.
    """
    from tqdm import tqdm

    from fsmi_bench.benchmark.builder import case_seed
    from fsmi_bench.benchmark.manifest import MANIFEST_NAME, load_benchmark
    from fsmi_bench.benchmark.masks import generate_mask

    mask_types = parse_types(types)
    benchmark = load_benchmark(bench_dir, verify=True)
    root = benchmark.root
    case_ids = benchmark.case_ids()
    replaced, sheet_items = {}, []
    for case_id in tqdm(case_ids, desc="drawing masks", unit="case"):
        rows = benchmark.rows_for(case_id)
        region = load_mask(root / rows[0].region)
        kind, number = case_id.rsplit("_", 1)
        this_seed = rows[0].seed if seed is None else case_seed(seed, kind, int(number) - 1)
        drawn = {}
        for row in rows:
            if row.mask_type not in mask_types:
                continue
            result = generate_mask(row.mask_type, region, this_seed)
            drawn[row.mask_type] = result.mask
            replaced[(case_id, row.mask_type)] = dataclasses.replace(
                row, seed=this_seed, mask_sha256=save_png(root / row.mask, result.mask), mask_params=result.params,
                mask_iou=round(float(result.iou), 6), mask_coverage=round(float(result.coverage), 6))
        if len(sheet_items) < SHEET_COLUMNS and case_id in _spread(case_ids, SHEET_COLUMNS):
            sheet_items.append((case_id, load_rgb(root / rows[0].scene), drawn))
    # Rows keep their order, so an unchanged benchmark keeps a byte-identical manifest.
    new_rows = [replaced.get((row.case_id, row.mask_type), row) for row in benchmark.rows]
    write_jsonl(root / MANIFEST_NAME, (row.to_json() for row in new_rows))
    return _write_sheet(sheet or root / "previews" / "contact_sheet.png", sheet_items, mask_types)


def _spread(items: list, count: int) -> set:
    if len(items) <= count:
        return set(items)
    return {items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)}


def _pair_images_with_regions(images_dir: Path, regions_dir: Path) -> list[tuple[str, Path, Path]]:
    for folder, what in ((images_dir, "--images"), (regions_dir, "--regions")):
        if not folder.is_dir():
            raise BadInputError(f"{what} folder not found: {folder}")
    regions = {p.stem: p for p in sorted(regions_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for image_path in sorted(images_dir.iterdir()):
        if image_path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if image_path.stem not in regions:
            raise BadInputError(f"no region mask for {image_path.name} in {regions_dir} (expected "
                                f"{image_path.stem}.png)")
        pairs.append((image_path.stem, image_path, regions[image_path.stem]))
    if not pairs:
        raise BadInputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    return pairs


def masks_for_folder(images_dir: str | Path, regions_dir: str | Path, out_dir: str | Path,
                     types: str | None = None, seed: int = 0, sheet: str | Path | None = None) -> Path:
    """Masks for every image with a region mask of the same name: ``OUT/<name>/<type>.png``,
    ``OUT/masks.jsonl`` (parameters, IoU and coverage) and a contact sheet. Seeds depend on the
    image's name, so adding images does not change the others' masks."""
    from tqdm import tqdm

    from fsmi_bench.benchmark.masks import generate_mask

    mask_types = parse_types(types)
    pairs = _pair_images_with_regions(Path(images_dir), Path(regions_dir))
    # Check every input before writing anything.
    loaded = []
    for name, image_path, region_path in pairs:
        image, region = load_rgb(image_path), load_mask(region_path)
        if region.shape != image.shape[:2]:
            raise BadInputError(f"region {region_path.name} is {region.shape[1]}x{region.shape[0]} but image "
                                f"{image_path.name} is {image.shape[1]}x{image.shape[0]}")
        if not region.any():
            raise BadInputError(f"region {region_path} is empty (no non-zero pixel)")
        loaded.append((name, image, region))
    out = ensure_writable_dir(out_dir)
    records, sheet_items = [], []
    names = [name for name, _, _ in loaded]
    for name, image, region in tqdm(loaded, desc="drawing masks", unit="image"):
        image_seed = int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0] >> 1)
        drawn = {}
        for mask_type in mask_types:
            result = generate_mask(mask_type, region, image_seed)
            drawn[mask_type] = result.mask
            records.append({"image": name, "mask_type": mask_type, "seed": image_seed,
                            "mask": f"{name}/{mask_type}.png", "mask_sha256": save_png(out / name / f"{mask_type}.png",
                                                                                        result.mask),
                            "mask_iou": round(float(result.iou), 6),
                            "mask_coverage": round(float(result.coverage), 6), "mask_params": result.params})
        if name in _spread(names, SHEET_COLUMNS):
            sheet_items.append((name, image, drawn))
    write_jsonl(out / "masks.jsonl", records)
    return _write_sheet(sheet or out / "contact_sheet.png", sheet_items, mask_types)


def _write_sheet(path, items, mask_types) -> Path:
    from fsmi_bench.benchmark.previews import mask_contact_sheet

    path = Path(path)
    save_png(path, mask_contact_sheet(items, mask_types))
    return path
