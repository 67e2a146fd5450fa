"""Synthetic long results tables with known, hand-checkable values (for the report and compare tests)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fsmi_bench.schema import MASK_CONDITIONS, OPS

MULTI_METRICS = ("fg_psnr", "fg_clip_t", "fg_clip_i", "fg_dinov2", "whole_psnr", "whole_lpips", "whole_clip_i",
                 "whole_dinov2")
SINGLE_METRICS = ("bg_psnr", "bg_ssim", "bg_lpips", "fg_clip_t")


def known_value(method_offset: float, case_index: int, mask_index: int, metric_index: int) -> float:
    """Exact, hand-checkable values: case i, mask type j, metric k -> offset + i + 0.1 j + 10 k."""
    return method_offset + case_index + 0.1 * mask_index + 10.0 * metric_index


def known_shape_iou(mask_index: int) -> float:
    """The shape IoU of mask type j: 1 for the full mask, 0.3 + 0.06 j for the free shapes (0.36 to 0.78)."""
    return 1.0 if mask_index == 0 else 0.3 + 0.06 * mask_index


def results_frame(method: str, offset: float, cases: int = 4, kinds=("multi", "single"), noise: float = 0.0,
                  seed: int = 0, version: str = "fsmi-edit-1.0", protocol: str = "paper") -> pd.DataFrame:
    """One method's long results table; ``noise`` adds seeded per-row normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in kinds:
        metrics = MULTI_METRICS if kind == "multi" else SINGLE_METRICS
        for case_index in range(cases):
            for mask_index, mask_type in enumerate(MASK_CONDITIONS):
                for metric_index, metric in enumerate(metrics):
                    value = known_value(offset, case_index, mask_index, metric_index)
                    if noise:
                        value += float(rng.normal(0.0, noise))
                    rows.append({
                        "method": method, "case_id": f"{kind}_{case_index + 1:04d}", "kind": kind,
                        "op": OPS[case_index % 3], "scenario": "indoor" if case_index % 2 else "outdoor",
                        "complexity": ("simple" if case_index % 2 else "complex") if kind == "multi" else "none",
                        "mask_type": mask_type, "shape_iou": known_shape_iou(mask_index),
                        "shape_coverage": 1.0 if mask_index == 0 else 0.6 + 0.05 * mask_index, "metric": metric,
                        "value": value, "status": "ok", "reason": "",
                        "higher_is_better": "lpips" not in metric,
                        "metric_spec": json.dumps({"model": "none", "region_mode": "bbox_crop", "input_size": 256}),
                        "protocol": protocol, "benchmark_version": version, "manifest_sha256": "0" * 64,
                        "run_provenance": json.dumps({"method": method, "seed": 0}),
                    })
    return pd.DataFrame(rows)


def expected_group_mean(offset: float, cases: int, mask_types, metric_index: int) -> float:
    """Mean over cases of the per-case mean over ``mask_types``, computed by plain loops."""
    per_case = []
    for case_index in range(cases):
        values = [known_value(offset, case_index, MASK_CONDITIONS.index(mask_type), metric_index)
                  for mask_type in mask_types]
        per_case.append(sum(values) / len(values))
    return sum(per_case) / len(per_case)


def write_results(tmp_path, frame, name, fmt="parquet"):
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path
