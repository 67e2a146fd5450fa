"""Maintainer's script: re-derive the shipped GrabCut masks of ``mini`` and rewrite their PNGs.

Run as ``python -m fsmi_bench.benchmark.sources.regenerate_mini_masks`` after changing a box in
``mini_grabcut.GRABCUT_OBJECTS``; the test of the mini source then checks the new files.
"""

from __future__ import annotations

from fsmi_bench.benchmark.sources.mini import load_photo
from fsmi_bench.benchmark.sources.mini_grabcut import GRABCUT_OBJECTS, derive_mask, shipped_mask_path
from fsmi_bench.io import save_png


def main() -> None:
    for item in GRABCUT_OBJECTS:
        image = load_photo(item.photo)
        mask = derive_mask(image, item.box, item.iterations, item.ellipse)
        save_png(shipped_mask_path(item.name), mask)
        print(f"{item.name}: {mask.mean():.3f} of the photo")


if __name__ == "__main__":
    main()
