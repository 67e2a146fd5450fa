"""The run engine's own cost per (case, mask condition), measured with ``identity`` over a whole benchmark.

Usage:
    python benchmarks/bench_run.py               # `fsmi build` of the default size: 205 cases x 9, 512 px
    python benchmarks/bench_run.py --synthetic   # a synthetic folder of the same size (fast to write)
    python benchmarks/bench_run.py --bench DIR   # an existing benchmark folder

Without ``--bench``, the benchmark is built with ``fsmi_bench.benchmark.builder.build_benchmark`` (source "mini", default
size) when the builder is installed; with ``--synthetic`` or without the builder, a synthetic folder of the
default size is written (real photo content from scikit-image's bundled images, so PNG sizes are realistic;
each distinct image is encoded once). Three passes are timed: a fresh run (every output written), a resumed
run with nothing left to do (every output checked), and the benchmark verification alone (sha256 of every
file), which both runs include. Wall and CPU time are printed: on a shared machine CPU time is the fairer one.
The target is under 20 ms per (case, mask condition) for the fresh run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsmi_bench import BENCHMARK_VERSION  # noqa: E402
from fsmi_bench.benchmark.manifest import MANIFEST_NAME, ManifestRow, load_benchmark  # noqa: E402
from fsmi_bench.io import atomic_write_bytes, encode_png, sha256_bytes, write_jsonl  # noqa: E402
from fsmi_bench.run.engine import RunConfig, run_method  # noqa: E402

MASK_CONDITIONS = ("full", "circle", "circle_open", "rectangle", "rectangle_open", "triangle", "triangle_open",
                   "irregular", "irregular_open")


def _photos(size: int) -> list[np.ndarray]:
    """A few RGB photos at size x size (scikit-image's bundled ones; smooth noise if unavailable)."""
    from PIL import Image

    photos = []
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "rocket"):
            image = np.asarray(getattr(data, name)())
            photos.append(np.asarray(Image.fromarray(image).convert("RGB").resize((size, size), Image.BICUBIC)))
    except Exception:  # the images are optional data of scikit-image
        rng = np.random.default_rng(0)
        for _ in range(4):
            coarse = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            photos.append(np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC)))
    return photos


def write_synthetic_benchmark(root: Path, n_single: int = 80, n_multi: int = 125, size: int = 512) -> Path:
    """A benchmark folder of the default size whose files are valid PNGs listed with their sha256."""
    photos = [encode_png(photo) for photo in _photos(size)]
    region = np.zeros((size, size), dtype=bool)
    region[size // 4:size // 2, size // 3:2 * size // 3] = True
    rows_index, cols_index = np.mgrid[:size, :size]
    circle = (rows_index - 3 * size / 8) ** 2 + (cols_index - size / 2) ** 2 < (size / 5) ** 2
    masks = {mask_type: encode_png(region if mask_type == "full" else circle) for mask_type in MASK_CONDITIONS}
    region_png = encode_png(region)
    manifest = []
    cases = [("single", index) for index in range(1, n_single + 1)] + \
            [("multi", index) for index in range(1, n_multi + 1)]
    for number, (kind, index) in enumerate(cases):
        case_id = f"{kind}_{index:04d}"
        files = {"scene": photos[number % 4], "gt": photos[(number + 1) % 4], "region": region_png}
        if kind == "multi":
            files["subject"] = photos[(number + 2) % 4]
        for name, data in files.items():
            atomic_write_bytes(root / "cases" / case_id / f"{name}.png", data)
        for mask_type, data in masks.items():
            atomic_write_bytes(root / "cases" / case_id / "masks" / f"{mask_type}.png", data)
            manifest.append(ManifestRow(
                case_id=case_id, kind=kind, op="add", scenario="indoor",
                complexity="simple" if kind == "multi" else "none", mask_type=mask_type,
                instruction="add the cup in the marked area", label="cup", clip_text="cup", seed=number,
                width=size, height=size, scene=f"cases/{case_id}/scene.png", scene_sha256=sha256_bytes(files["scene"]),
                gt=f"cases/{case_id}/gt.png", gt_sha256=sha256_bytes(files["gt"]),
                region=f"cases/{case_id}/region.png", region_sha256=sha256_bytes(region_png),
                mask=f"cases/{case_id}/masks/{mask_type}.png", mask_sha256=sha256_bytes(data),
                mask_iou=0.0, mask_coverage=0.0, mask_params={}, benchmark_version=BENCHMARK_VERSION,
                source="synthetic", origins={},
                subject=f"cases/{case_id}/subject.png" if kind == "multi" else None,
                subject_sha256=sha256_bytes(files["subject"]) if kind == "multi" else None).to_json())
    write_jsonl(root / MANIFEST_NAME, manifest)
    return root


def _make_benchmark(root: Path, synthetic: bool) -> tuple[Path, str]:
    try:
        from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    except ImportError:
        synthetic = True
    if synthetic:
        return write_synthetic_benchmark(root), "synthetic (80 single + 125 multi cases x 9 masks, 512 px)"
    build_benchmark(BuildConfig(out=root, source="mini", previews=False), progress=False)
    return root, "fsmi build --source mini (default size: 80 single + 125 multi cases x 9 masks, 512 px)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, default=None, help="existing benchmark folder")
    parser.add_argument("--method", default="identity")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic folder even if the builder exists")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsmi-bench-run-") as scratch:
        scratch = Path(scratch)
        if args.bench is None:
            started = time.perf_counter()
            bench, origin = _make_benchmark(scratch / "bench", args.synthetic)
            print(f"benchmark: {origin}, written in {time.perf_counter() - started:.1f} s")
        else:
            bench, origin = args.bench, str(args.bench)
        started = time.perf_counter()
        rows = len(load_benchmark(bench, verify=True).rows)
        verify_s = time.perf_counter() - started
        config = RunConfig(method=args.method, bench=bench, out=scratch / "run", progress=False)
        cpu_started = time.process_time()
        fresh = run_method(config)
        fresh_cpu = time.process_time() - cpu_started
        cpu_started = time.process_time()
        resumed = run_method(config)
        resumed_cpu = time.process_time() - cpu_started
        print(f"{rows} (case, mask condition) rows; method {args.method}")
        print(f"benchmark verification (sha256 of every file): {verify_s:.2f} s = "
              f"{1000 * verify_s / rows:.2f} ms per row")
        print(f"fresh run:   wall {fresh.elapsed_s:.1f} s = {1000 * fresh.elapsed_s / rows:.1f} ms per row, "
              f"CPU {1000 * fresh_cpu / rows:.1f} ms per row ({fresh.written} written; target < 20 ms)")
        print(f"resumed run: wall {resumed.elapsed_s:.1f} s = {1000 * resumed.elapsed_s / rows:.1f} ms per row, "
              f"CPU {1000 * resumed_cpu / rows:.1f} ms per row ({resumed.skipped} outputs checked and kept)")


if __name__ == "__main__":
    main()
