"""Small benchmark folders and test-only methods for the run engine's tests.

``make_benchmark`` writes a real benchmark folder (PNGs through ``save_png``, rows through
``ManifestRow.to_json``) that ``load_benchmark(verify=True)`` accepts: a few single- and multi-image cases,
each with a few mask conditions. Images are small so that a whole run takes well under a second.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fsmi_bench import BENCHMARK_VERSION
from fsmi_bench.benchmark.manifest import MANIFEST_NAME, ManifestRow
from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.io import save_png, sha256_file, write_jsonl
from fsmi_bench.run.method import EditRequest, Method

SMALL_MASK_TYPES = ("full", "circle", "rectangle_open")


def _disc(height: int, width: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def _mask_for(mask_type: str, region: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if mask_type == "circle":
        return _disc(*region.shape, ((y0 + y1) / 2, (x0 + x1) / 2), max(y1 - y0, x1 - x0) / 2 + 1)
    if mask_type == "rectangle_open":
        mask = np.zeros_like(region)
        mask[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = True
        mask[y0:y1, x0:x1] = False
        mask[y0 - 2:y0, x0:x0 + 3] = False  # the gap of an open stroke
        return mask
    return region.copy()


def make_benchmark(root: Path, n_single: int = 2, n_multi: int = 2, width: int = 40, height: int = 32,
                   mask_types: tuple[str, ...] = SMALL_MASK_TYPES) -> Path:
    """Write a benchmark folder with ``n_single`` + ``n_multi`` cases × ``mask_types``; returns ``root``.

    Case i's scene is a smooth gradient with noise from seed i; its edit region is a square; multi-image
    cases get a subject: a coloured disc on a plain background (simple) or on noise (complex).
    """
    root = Path(root)
    rows = []
    ops = ("add", "replace", "remove")
    cases = [("single", index + 1) for index in range(n_single)] + [("multi", index + 1) for index in range(n_multi)]
    for number, (kind, index) in enumerate(cases):
        case_id = f"{kind}_{index:04d}"
        seed = 1000 + number
        rng = np.random.default_rng(seed)
        gradient = np.linspace(40, 200, width)[None, :, None] + np.linspace(0, 40, height)[:, None, None]
        scene = np.clip(gradient + rng.integers(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        region = np.zeros((height, width), dtype=bool)
        top, left = height // 4 + number % 3, width // 4 + number % 4
        region[top:top + height // 2, left:left + width // 3] = True
        gt = scene.copy()
        gt[region] = (200, 30 + 40 * number % 200, 60)
        case_dir = root / "cases" / case_id
        files = {"scene": save_png(case_dir / "scene.png", scene), "gt": save_png(case_dir / "gt.png", gt),
                 "region": save_png(case_dir / "region.png", region)}
        subject_path = subject_sha = None
        complexity = "none"
        if kind == "multi":
            complexity = "simple" if index % 2 else "complex"
            subject = np.full((24, 20, 3), 255, dtype=np.uint8) if complexity == "simple" else \
                rng.integers(0, 255, (24, 20, 3)).astype(np.uint8)
            subject[_disc(24, 20, (12, 10), 7)] = (20, 160, 40)
            subject_path = f"cases/{case_id}/subject.png"
            subject_sha = save_png(root / subject_path, subject)
        op = ops[number % len(ops)] if kind == "single" else ops[number % 2]
        for mask_type in mask_types:
            mask = _mask_for(mask_type, region)
            mask_relative = f"cases/{case_id}/masks/{mask_type}.png"
            mask_sha = save_png(root / mask_relative, mask)
            overlap = float((mask & region).sum())
            rows.append(ManifestRow(
                case_id=case_id, kind=kind, op=op, scenario="indoor" if number % 2 else "outdoor",
                complexity=complexity, mask_type=mask_type, instruction=f"{op} the cup in the marked area",
                label="cup", clip_text="cup", seed=seed, width=width, height=height,
                scene=f"cases/{case_id}/scene.png", scene_sha256=files["scene"],
                gt=f"cases/{case_id}/gt.png", gt_sha256=files["gt"],
                region=f"cases/{case_id}/region.png", region_sha256=files["region"],
                mask=mask_relative, mask_sha256=mask_sha,
                mask_iou=overlap / float((mask | region).sum()), mask_coverage=overlap / float(region.sum()),
                mask_params={}, benchmark_version=BENCHMARK_VERSION, source="test", origins={},
                subject=subject_path, subject_sha256=subject_sha).to_json())
    write_jsonl(root / MANIFEST_NAME, rows)
    return root


def output_digests(run_root: Path) -> dict[str, str]:
    """sha256 of every output PNG of a run folder, keyed by "case_id/mask_type.png"."""
    outputs = Path(run_root) / "outputs"
    return {path.relative_to(outputs).as_posix(): sha256_file(path) for path in sorted(outputs.rglob("*.png"))}


class SeededNoise(Method):
    """Paints the mask region with noise drawn from the request's seed; sleeps ``delay_s`` per edit.

    The output depends on the seed, so byte-identical outputs prove the seeds were the same.
    """

    name = "seeded-noise"

    def setup(self) -> None:
        time.sleep(float(self.config.get("setup_s", 0.0)))  # a method that loads weights for a while

    def edit(self, request: EditRequest) -> np.ndarray:
        time.sleep(float(self.config.get("delay_s", 0.0)))
        output = request.scene.copy()
        noise = np.random.default_rng(request.seed).integers(0, 256, output.shape, dtype=np.uint8)
        output[request.mask] = noise[request.mask]
        return output


class FailWhileMarked(Method):
    """Raises for case ``fail_case`` while the file ``marker`` exists; identity otherwise."""

    name = "fail-while-marked"

    def edit(self, request: EditRequest) -> np.ndarray:
        if request.case_id == self.config["fail_case"] and Path(self.config["marker"]).exists():
            raise RuntimeError(f"cannot edit {request.case_id}")
        return request.scene.copy()


class HalfSize(Method):
    """Returns the scene at half its size (a method that works at another resolution)."""

    name = "half-size"

    def edit(self, request: EditRequest) -> np.ndarray:
        return np.ascontiguousarray(request.scene[::2, ::2])


class NeedsWeights(Method):
    """A method whose weights are never present: ``setup`` raises MissingWeightsError."""

    name = "needs-weights"

    def setup(self) -> None:
        raise MissingWeightsError("needs-weights: weights not found; pass --weights PATH "
                                  "or set FSMI_TEST_WEIGHTS to the model folder")

    def edit(self, request: EditRequest) -> np.ndarray:
        raise AssertionError("never reached")
