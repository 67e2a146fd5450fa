"""``fsmi generate-masks``: (re)make free-shape masks for a benchmark or for any folder of images
with region masks, and draw a contact sheet of them."""

from __future__ import annotations

import dataclasses
import re
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import (
    atomic_write_bytes,
    encode_png,
    ensure_writable_dir,
    exclusive_lock,
    load_mask,
    load_rgb,
    path_inside,
    save_png,
    sha256_bytes,
    write_jsonl,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SHEET_COLUMNS = 8
# Held while a benchmark's masks and manifest are rewritten.
BENCHMARK_LOCK_NAME = ".fsmi-benchmark.lock"


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
                               sheet: str | Path | None = None, replace_drawn: bool = False) -> Path:
    """Redraw the masks of the given types in a built benchmark, update its manifest, write a sheet.

    With ``seed`` the masks are drawn from new per-case seeds (derived from ``seed`` as ``fsmi build``
    does); without it, from each case's recorded seed, which reproduces the build's masks exactly.
    Masks drawn by hand (``mask_params.drawn_by == "user"``) are kept unless ``replace_drawn``.

    Transactional: a changed mask is written under a name the current manifest does not use, beside the
    old one; the manifest is swapped atomically last, and only then are the old masks removed. A kill at
    any moment leaves the old benchmark or the new one, both loadable.
    """
    from tqdm import tqdm

    from fsmi_bench.benchmark.manifest import MANIFEST_NAME, load_benchmark
    from fsmi_bench.benchmark.masks import generate_mask

    mask_types = parse_types(types)
    benchmark = load_benchmark(bench_dir, verify=True)
    root = benchmark.root
    with exclusive_lock(root / BENCHMARK_LOCK_NAME, f"benchmark {root}", wait_s=0):
        benchmark = load_benchmark(bench_dir, verify=True)  # as it is now that no one else writes it
        in_use = {row.mask for row in benchmark.rows}
        case_ids = benchmark.case_ids()
        positions = {}
        for row in benchmark.rows:
            positions.setdefault(row.case_id, len(positions))
        replaced, sheet_items = {}, []
        for case_id in tqdm(case_ids, desc="drawing masks", unit="case"):
            rows = benchmark.rows_for(case_id)
            region = load_mask(root / rows[0].region)
            this_seed = rows[0].seed if seed is None else _new_case_seed(seed, rows[0], positions[case_id])
            drawn = {}
            for row in rows:
                if row.mask_type not in mask_types:
                    continue
                if (row.mask_params or {}).get("drawn_by") == "user" and not replace_drawn:
                    drawn[row.mask_type] = load_mask(root / row.mask)
                    continue
                result = generate_mask(row.mask_type, region, this_seed)
                drawn[row.mask_type] = result.mask
                data = encode_png(result.mask)
                digest = sha256_bytes(data)
                path = row.mask if digest == row.mask_sha256 else _unused_mask_path(row, digest, in_use)
                if path != row.mask:
                    atomic_write_bytes(path_inside(root, path), data)
                replaced[(case_id, row.mask_type)] = dataclasses.replace(
                    row, seed=this_seed, mask=path, mask_sha256=digest, mask_params=result.params,
                    mask_iou=round(float(result.iou), 6), mask_coverage=round(float(result.coverage), 6))
            if len(sheet_items) < SHEET_COLUMNS and case_id in _spread(case_ids, SHEET_COLUMNS):
                sheet_items.append((case_id, load_rgb(root / rows[0].scene), drawn))
        # Rows keep their order, so an unchanged benchmark keeps a byte-identical manifest.
        new_rows = [replaced.get((row.case_id, row.mask_type), row) for row in benchmark.rows]
        write_jsonl(root / MANIFEST_NAME, (row.to_json() for row in new_rows))  # the commit point
        _remove_unused_masks(root, new_rows)
    return _write_sheet(sheet or root / "previews" / "contact_sheet.png", sheet_items, mask_types)


def _new_case_seed(seed: int, row, position: int) -> int:
    """The seed ``fsmi build --seed`` gives a case: from the number in ``<kind>_<number>`` ids, else from the
    case's position in the manifest (the build's order for cases from a source that names its own ids)."""
    from fsmi_bench.benchmark.builder import case_seed

    match = re.fullmatch(rf"{re.escape(row.kind)}_0*([1-9][0-9]{{0,8}})", row.case_id)
    index = int(match.group(1)) - 1 if match else position
    return case_seed(seed, row.kind, index)


def _unused_mask_path(row, digest: str, in_use: set[str]) -> str:
    """Where a changed mask goes: ``masks/<type>.png`` if no row uses it now, else ``masks/<type>.<sha>.png``."""
    folder = PurePosixPath(row.mask).parent
    for name in (f"{row.mask_type}.png", f"{row.mask_type}.{digest[:12]}.png"):
        candidate = (folder / name).as_posix()
        if candidate not in in_use:
            return candidate
    raise BadInputError(f"case {row.case_id}: no free file name for its new {row.mask_type} mask")


def _remove_unused_masks(root: Path, rows) -> None:
    """After the manifest swap: delete the mask files of the cases' mask folders that no row uses any more
    (the replaced masks, and new ones left by a regeneration killed before its swap). Only files named as
    masks are named here (``<type>.png``, ``<type>.<12 hex>.png``) are touched."""
    from fsmi_bench.benchmark.manifest import FILE_KEYS

    used = {path_inside(root, getattr(row, key)) for row in rows for key in FILE_KEYS if getattr(row, key)}
    types = "|".join(re.escape(mask_type) for mask_type in sorted({row.mask_type for row in rows}))
    mask_file = re.compile(rf"(?:{types})(?:\.[0-9a-f]{{12}})?\.png")
    for folder in {path_inside(root, row.mask).parent for row in rows}:
        for path in folder.glob("*.png"):
            if path not in used and mask_file.fullmatch(path.name):
                path_inside(folder, path.name).unlink(missing_ok=True)


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
