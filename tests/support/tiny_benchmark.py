"""A tiny benchmark folder written without the builder, for tests of the later stages.

``write_tiny_benchmark(root)`` writes ``root/manifest.jsonl``, ``root/README.md`` and the PNGs of a few
cases in the contract's layout (``cases/<case_id>/scene.png``, ``gt.png``, ``region.png``,
``subject.png`` for multi-image cases, ``masks/<mask_type>.png``). Pixels are random but fixed by ``seed``;
each case's GT differs from its scene exactly inside its rectangular edit region, and each mask is a
rectangle shifted from the region, so that mask IoU and coverage are real numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fsmi_bench import BENCHMARK_VERSION
from fsmi_bench.benchmark.manifest import MANIFEST_NAME, ManifestRow
from fsmi_bench.io import atomic_write_text, save_png, write_jsonl

ALL_MASK_TYPES = ("full", "circle", "circle_open", "rectangle", "rectangle_open", "triangle", "triangle_open",
                  "irregular", "irregular_open")


def write_tiny_benchmark(root, n_single: int = 2, n_multi: int = 1, width: int = 40, height: int = 30,
                         mask_types=ALL_MASK_TYPES, seed: int = 0, scenes=None, regions=None) -> Path:
    """Write a benchmark of ``n_single`` + ``n_multi`` cases of ``width`` x ``height`` pixels; returns root.

    ``scenes`` and ``regions`` (lists, one (height, width, 3) uint8 / (height, width) bool array per case,
    single-image cases first) replace the random scenes and the rectangular regions."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    case_ids = [f"single_{i:04d}" for i in range(1, n_single + 1)] + [f"multi_{i:04d}" for i in range(1, n_multi + 1)]
    for number, case_id in enumerate(case_ids):
        kind = case_id.split("_")[0]
        folder = f"cases/{case_id}"
        scene = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        if scenes is not None:
            scene = scenes[number]
        region = np.zeros((height, width), dtype=bool)
        top, left = 3 + number % 5, 4 + number % 7
        region[top:top + height // 2, left:left + width // 2] = True
        if regions is not None:
            region = regions[number]
        gt = scene.copy()
        gt[region] = 255 - gt[region]  # every region pixel changes
        files = {"scene": save_png(root / folder / "scene.png", scene),
                 "gt": save_png(root / folder / "gt.png", gt),
                 "region": save_png(root / folder / "region.png", region)}
        subject_path = subject_sha = None
        if kind == "multi":
            subject = rng.integers(0, 256, size=(height // 2 + 3, width // 2 + 5, 3), dtype=np.uint8)
            subject_path, subject_sha = f"{folder}/subject.png", save_png(root / folder / "subject.png", subject)
        for shift, mask_type in enumerate(mask_types):
            mask = region.copy() if mask_type == "full" else np.roll(region, shift=(shift % 3, shift), axis=(0, 1))
            mask_sha = save_png(root / folder / "masks" / f"{mask_type}.png", mask)
            iou = float((mask & region).sum() / (mask | region).sum())
            coverage = float((mask & region).sum() / region.sum())
            rows.append(ManifestRow(
                case_id=case_id, kind=kind, op=("add", "replace", "remove")[number % 3],
                scenario=("indoor", "outdoor")[number % 2],
                complexity="none" if kind == "single" else ("simple", "complex")[number % 2],
                mask_type=mask_type, instruction=f"add a cup number {number} in the marked area", label="cup",
                clip_text="cup", seed=1000 + number, width=width, height=height,
                scene=f"{folder}/scene.png", scene_sha256=files["scene"], gt=f"{folder}/gt.png",
                gt_sha256=files["gt"], region=f"{folder}/region.png", region_sha256=files["region"],
                mask=f"{folder}/masks/{mask_type}.png", mask_sha256=mask_sha, mask_iou=iou,
                mask_coverage=coverage, mask_params={"shift": shift}, benchmark_version=BENCHMARK_VERSION,
                source="test", origins={"scene": f"random seed {seed}"}, subject=subject_path,
                subject_sha256=subject_sha).to_json())
    write_jsonl(root / MANIFEST_NAME, rows)
    atomic_write_text(root / "README.md", "# Tiny test benchmark\n\nRandom pixels, for tests only.\n")
    return root
