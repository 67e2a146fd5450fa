"""Speed of the mask generators: masks per second at 512 x 512, per type and overall, one process.

Regions are a fixed, seeded mix of what a benchmark build sees: ellipses and polygons from 3 % to 60 %
of the image, thin bars, and objects touching the border. Each type is timed on the same regions.

    .venv/bin/python benchmarks/bench_masks.py            # default: 60 regions x 3 seeds per type
    .venv/bin/python benchmarks/bench_masks.py --regions 20 --seeds 1

Also prints, per type, the share of draws accepted by the rejection sampler (the rest used the fallback)
and the mean number of draws per mask.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsmi_bench.benchmark.masks import ALL_MASK_TYPES, generate_mask

SIZE = 512


def make_regions(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` bool (512, 512) regions of assorted size, shape and position (deterministic)."""
    rng = np.random.default_rng(seed)
    regions = []
    for index in range(count):
        canvas = np.zeros((SIZE, SIZE), dtype=np.uint8)
        kind = index % 4
        centre = tuple(int(value) for value in rng.integers(0, SIZE, size=2))
        if kind == 0:  # ellipse
            axes = tuple(int(value) for value in rng.integers(15, 200, size=2))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 1:  # random star-shaped polygon
            radius = rng.uniform(20, 220)
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=7))
            radii = radius * rng.uniform(0.4, 1.0, size=7)
            points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
            cv2.fillPoly(canvas, [points.astype(np.int32)], 1)
        elif kind == 2:  # thin bar
            end = tuple(int(value) for value in rng.integers(0, SIZE, size=2))
            cv2.line(canvas, centre, end, 1, int(rng.integers(4, 30)))
        else:  # object at the border
            cv2.circle(canvas, (int(rng.integers(0, 60)), centre[1]), int(rng.integers(30, 150)), 1, -1)
        if not canvas.any():
            canvas[centre[1], centre[0]] = 1
        regions.append(canvas.astype(bool))
    return regions


def time_type(name: str, regions: list[np.ndarray], seeds: int) -> tuple[float, float, float, float]:
    """(wall seconds, CPU seconds, accepted share, mean attempts) for one pass over regions x seeds."""
    accepted, attempts, count = 0, 0, 0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for region in regions:
        for seed in range(seeds):
            params = generate_mask(name, region, seed).params
            accepted += params.get("accepted", True)
            attempts += params.get("attempts", 1)
            count += 1
    return time.perf_counter() - wall_start, time.process_time() - cpu_start, accepted / count, attempts / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="passes per type; the fastest is kept")
    arguments = parser.parse_args()
    regions = make_regions(arguments.regions)
    types = [name for name in ALL_MASK_TYPES if name != "full"] + ["full"]
    for name in types:  # import every generator before timing
        generate_mask(name, regions[0], seed=0)

    count = arguments.regions * arguments.seeds
    total_wall, total_cpu = 0.0, 0.0
    # Other processes share the machine: the fastest of a few passes is the generator's own speed.
    print(f"{'type':<16}{'masks/s':>10}{'masks/cpu-s':>13}{'accepted':>10}{'mean attempts':>15}")
    for name in types:
        passes = [time_type(name, regions, arguments.seeds) for _ in range(arguments.repeats)]
        wall = min(one_pass[0] for one_pass in passes)
        cpu = min(one_pass[1] for one_pass in passes)
        _, _, accepted, attempts = passes[0]
        total_wall += wall
        total_cpu += cpu
        print(f"{name:<16}{count / wall:>10.0f}{count / cpu:>13.0f}{accepted:>10.1%}{attempts:>15.2f}")
    total = count * len(types)
    print(f"{'overall':<16}{total / total_wall:>10.0f}{total / total_cpu:>13.0f}"
          f"   ({total} masks at {SIZE}x{SIZE}, one process, best of {arguments.repeats} passes)")


if __name__ == "__main__":
    main()
