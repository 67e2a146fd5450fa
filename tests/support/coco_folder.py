"""A small COCO-format folder (``images/`` + ``annotations/instances_train.json``, polygon masks), as
pycocotools and the ``coco`` source read a real one: for tests that train on a second source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fsmi_bench.io import save_png

CATEGORIES = [{"id": 18, "name": "dog", "supercategory": "animal"},
              {"id": 44, "name": "bottle", "supercategory": "kitchen"},
              {"id": 62, "name": "chair", "supercategory": "furniture"}]


def write_coco_folder(root: Path, photos: int = 6, width: int = 64, height: int = 48) -> Path:
    """``photos`` textured photos, each with two objects (a box-shaped and a triangular polygon)."""
    root = Path(root)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for number in range(1, photos + 1):
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image[:, : width // 2] //= 2  # some structure besides noise
        save_png(root / "images" / f"{number:012d}.png", image)
        images.append({"id": number, "file_name": f"{number:012d}.png", "width": width, "height": height,
                       "license": 1})
        x, y = int(rng.integers(2, width // 2 - 20)), int(rng.integers(2, height - 22))
        annotations.append({"id": 100 * number + 1, "image_id": number, "category_id": CATEGORIES[number % 3]["id"],
                            "iscrowd": 0, "segmentation": [[x, y, x + 18, y, x + 18, y + 20, x, y + 20]]})
        x = int(rng.integers(width // 2, width - 20))
        annotations.append({"id": 100 * number + 2, "image_id": number,
                            "category_id": CATEGORIES[(number + 1) % 3]["id"], "iscrowd": 0,
                            "segmentation": [[x, 4, x + 18, 4, x + 9, 30]]})
    dataset = {"licenses": [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
               "images": images, "categories": CATEGORIES, "annotations": annotations}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(dataset), encoding="utf-8")
    return root
