"""Time the full default build: 80 single + 125 multi-image cases x 9 mask conditions at 512 px.

Usage: python benchmarks/bench_build.py [--workers N] [--size 512]
Prints the wall time of the build (source loading included) and cases per second.
Target (issue 2): under 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--previews", action="store_true", help="include the preview pictures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        out = build_benchmark(BuildConfig(out=Path(folder) / "bench", size=args.size, workers=args.workers,
                                          previews=args.previews), progress=False)
        elapsed = time.perf_counter() - start
        rows = sum(1 for _ in open(out / "manifest.jsonl"))
        size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    print(f"full build: 205 cases, {rows} manifest rows, size {args.size}, workers {args.workers}, "
          f"cpus {os.cpu_count()}")
    print(f"wall time: {elapsed:.1f} s ({205 / elapsed:.1f} cases/s), on disk {size_mb:.0f} MB")
    print(f"target < 60 s: {'met' if elapsed < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
