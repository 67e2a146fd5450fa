"""What ``fsmi import-outputs`` reads: the outputs made elsewhere, found in a folder or listed in a CSV, and each
image checked and mapped to the scene's size as ``fsmi run`` maps a method's output.

- a folder ``FROM/<case_id>/<mask_type>.png`` (``.jpg``, ``.jpeg`` and ``.webp`` too), as ``fsmi run`` writes
  under ``outputs/``;
- a CSV file with the header ``case_id,mask_type,path`` (a UTF-8 byte-order mark, as Excel writes, is
  accepted), one row per output, each path absolute, ``~``-relative or relative to the CSV's folder.

Every image goes through ``fsmi_bench.io.decode_image`` (the pixel limit, before any pixel is decoded); its EXIF
orientation is applied (a camera's rotated JPEG comes out upright); an animated image is refused (which frame
is the output is not for fsmi to guess).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.manifest import Benchmark
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import decode_image
from fsmi_bench.run.outputs import map_to_scene_size
from fsmi_bench.run.record import EditKey

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CSV_COLUMNS = ("case_id", "mask_type", "path")
# Image modes turned into RGB without loss of what a metric reads (alpha is dropped, as for a method's output).
CONVERTIBLE_MODES = ("L", "LA", "P", "PA", "RGBA", "RGBX")


@dataclass(frozen=True)
class ImportedFile:
    """One source file used for an output: where it was, its sha256, and what was done to it."""

    path: str
    sha256: str
    original_size: list[int] | None = None  # [width, height] when resized to the scene's size
    original_mode: str | None = None  # the PIL mode when it was not RGB
    exif_orientation: int | None = None  # the EXIF orientation applied (2 to 8), when there was one


def find_folder_files(source: Path, benchmark: Benchmark) -> tuple[dict[EditKey, Path], list[str]]:
    """``<case_id>/<mask_type>.<suffix>`` files of ``source``: those that name a benchmark row, and the
    relative paths of the other files (unmatched)."""
    known = {EditKey(row.case_id, row.mask_type) for row in benchmark.rows}
    found: dict[EditKey, Path] = {}
    unmatched: list[str] = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(source)
        key = EditKey(relative.parts[0], path.stem) if len(relative.parts) == 2 else None
        if key is None or key not in known or path.suffix.lower() not in IMAGE_SUFFIXES:
            unmatched.append(relative.as_posix())
        elif key in found:
            raise BadInputError(f"two files for {key.label} in {source}: {found[key].name} and {path.name}; "
                                "keep one")
        else:
            found[key] = path
    return found, unmatched


def read_mapping_csv(source: Path, benchmark: Benchmark) -> tuple[dict[EditKey, Path], list[str]]:
    """The rows of a ``case_id,mask_type,path`` CSV: those that name a benchmark row, and the other rows
    (as ``case_id/mask_type``, unmatched)."""
    known = {EditKey(row.case_id, row.mask_type) for row in benchmark.rows}
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would glue onto "case_id"
        with open(source, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = tuple((name or "").strip() for name in (reader.fieldnames or ()))
            missing_columns = [name for name in CSV_COLUMNS if name not in header]
            if missing_columns:
                raise BadInputError(f"{source}: needs the columns {', '.join(CSV_COLUMNS)} "
                                    f"(missing {', '.join(missing_columns)}; found {', '.join(header) or 'none'})")
            rows = [{key.strip(): (value if isinstance(value, str) else "").strip()
                     for key, value in row.items() if isinstance(key, str)} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BadInputError(f"cannot read {source}: {error}") from None
    found: dict[EditKey, Path] = {}
    unmatched: list[str] = []
    for line_number, row in enumerate(rows, start=2):
        key = EditKey(row.get("case_id", ""), row.get("mask_type", ""))
        if not row.get("path"):
            raise BadInputError(f"{source} line {line_number}: empty path")
        if key not in known:
            unmatched.append(key.label)
            continue
        if key in found:
            raise BadInputError(f"{source} line {line_number}: a second row for {key.label}")
        try:
            path = Path(row["path"]).expanduser()
        except RuntimeError as error:  # ~nosuchuser/x.png: no such user's home to expand
            raise BadInputError(f"{source} line {line_number}: cannot expand {row['path'][:200]!r} ({error})") from None
        found[key] = path if path.is_absolute() else source.parent / path
    return found, unmatched


def check_image(path: Path, width: int, height: int) -> tuple[np.ndarray, ImportedFile]:
    """Decode ``path`` completely and map it to an RGB uint8 image of (width, height), as ``fsmi run`` maps a
    method's output (``sha256`` of the record left empty: the caller has it). Raises ``BadInputError`` with
    the reason for a file that cannot be used."""
    from PIL import ImageOps

    image = decode_image(path, "the image", "does not decode as an image")
    with image:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise BadInputError(f"an animated image ({frames} frames): export the frame that is the output as "
                                "a PNG")
        try:
            orientation = image.getexif().get(0x0112)  # EXIF Orientation: 1 upright, 2 to 8 mirrored or turned
        except Exception:  # noqa: BLE001 - Pillow raises several types for a damaged EXIF block: nothing to apply
            orientation = None
        if orientation not in range(2, 9):
            orientation = None
        upright = ImageOps.exif_transpose(image) if orientation else image
        mode = upright.mode
        if mode != "RGB":
            if mode not in CONVERTIBLE_MODES:
                raise BadInputError(f"image mode {mode} is not RGB, grayscale, palette or RGBA")
            upright = upright.convert("RGBA" if "A" in mode or mode == "P" else "RGB")
        array = np.asarray(upright)
    mapped, original_size = map_to_scene_size(array, width, height)
    record = ImportedFile(path=str(path), sha256="", original_mode=None if mode == "RGB" else mode,
                          original_size=None if original_size is None else list(original_size),
                          exif_orientation=orientation)
    return mapped, record
