"""``fsmi quickstart`` of this checkout against an earlier commit, in one run, on the same machine.

Usage:
    python benchmarks/bench_quickstart.py                           # the full quickstart (205 cases, 512 px)
    python benchmarks/bench_quickstart.py --single 16 --multi 24    # a reduced one
    python benchmarks/bench_quickstart.py --base 9b9397f --metrics bg_psnr,bg_ssim,fg_psnr,whole_psnr

The earlier commit (``--base``, by default the one before the quickstart's speed work) is unpacked with
``git archive`` into a temporary folder and run from there with the same Python. Four timed passes, each a
fresh process: the base's quickstart, this checkout's, then a rerun of each with nothing left to do, each
variant with its own empty feature cache (``FSMI_CACHE_DIR``), so neither reuses the other's values. Then
the results tables of the two are compared row by row (every column the base's tables have; in the run
provenance, all but the git commit, which names the checkout): the script exits 1 if any row differs. Prints wall and CPU seconds
per pass and the ratio this checkout / base. Targets: quickstart at most 0.6x of the base, a rerun with
nothing to do under 10 s. The machine is shared: compare only figures from one run of the script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE = "9b9397f"  # main before the quickstart's speed work
TARGET_RATIO = 0.6
TARGET_RERUN_S = 10.0


def unpack(commit: str, folder: Path) -> Path:
    """The tree of ``commit`` (of this repository) written into ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def timed_quickstart(source: Path, out: Path, cache: Path, arguments: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of ``python -m fsmi_bench.cli quickstart`` with ``source``'s code."""
    # PYTHONPATH first on sys.path: the installed (editable) fsmi does not shadow the code under test.
    environment = {**os.environ, "PYTHONPATH": str(source), "FSMI_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fsmi_bench.cli", "quickstart", "--out", str(out), *arguments],
                          cwd=source, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"quickstart of {source} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _comparable(frame):
    import pandas as pd

    def without_commit(text):
        provenance = json.loads(text)
        provenance.pop("git_commit", None)
        return json.dumps(provenance, sort_keys=True)

    frame = frame.copy()
    frame["run_provenance"] = frame["run_provenance"].map(without_commit)
    frame = frame.sort_values(["method", "case_id", "mask_type", "metric"], kind="stable").reset_index(drop=True)
    # Values compared by their bits, so that NaN equals NaN and nothing is rounded.
    frame["value"] = pd.Series(frame["value"].to_numpy("float64").view("uint64"), dtype="uint64")
    return frame


def compare_results(base: Path, head: Path) -> tuple[int, list[str], list[str]]:
    """(rows compared, differences, columns only this checkout's tables have) between the results tables
    of two quickstart folders: every column of the base's tables must hold the same values, in order."""
    import pandas as pd

    names = sorted(path.name for path in (base / "results").glob("*.parquet"))
    if names != sorted(path.name for path in (head / "results").glob("*.parquet")):
        return 0, [f"different results files: {names}"], []
    rows, problems, added = 0, [], set()
    for name in names:
        ours, theirs = (_comparable(pd.read_parquet(folder / "results" / name)) for folder in (head, base))
        missing = [column for column in theirs.columns if column not in ours.columns]
        added.update(column for column in ours.columns if column not in theirs.columns)
        if missing or len(ours) != len(theirs):
            problems.append(f"{name}: {len(ours)} rows vs {len(theirs)}, columns missing here: {missing}")
            continue
        for column in theirs.columns:
            differing = ours[column] != theirs[column]
            if differing.any():
                metrics = ", ".join(sorted(set(ours.loc[differing, "metric"])))
                problems.append(f"{name}: {int(differing.sum())} rows differ in {column} ({metrics})")
        rows += len(ours)
    return rows, problems, sorted(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--single", type=int, default=80)
    parser.add_argument("--multi", type=int, default=125)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--metrics", default=None, help="comma-separated metrics (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="keep the folders here (default: a temporary one)")
    args = parser.parse_args()
    arguments = ["--single", str(args.single), "--multi", str(args.multi), "--size", str(args.size)]
    if args.metrics:
        arguments += ["--metrics", args.metrics]
    with tempfile.TemporaryDirectory(prefix="fsmi-bench-quickstart-") as temporary:
        work = args.work or Path(temporary)
        base_source = unpack(args.base, work / "base-source")
        folders = {"base": (base_source, work / "base-out", work / "base-cache"),
                   "this": (ROOT, work / "this-out", work / "this-cache")}
        print(f"quickstart {' '.join(arguments)}; base {args.base}, this checkout {ROOT}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cores", flush=True)
        times = {}
        for label, variant in (("fresh", "base"), ("fresh", "this"), ("rerun", "this"), ("rerun", "base")):
            times[label, variant] = timed_quickstart(*folders[variant], arguments)
            print(f"  {label:5s} {variant:4s}: {times[label, variant][0]:7.1f} s wall, "
                  f"{times[label, variant][1]:7.1f} s CPU", flush=True)
        rows, problems, added = compare_results(folders["base"][1], folders["this"][1])
    ratio = times["fresh", "this"][0] / times["fresh", "base"][0]
    print(f"quickstart: this checkout {times['fresh', 'this'][0]:.1f} s vs base {times['fresh', 'base'][0]:.1f} s "
          f"= {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(f"rerun with nothing to do: {times['rerun', 'this'][0]:.1f} s (base {times['rerun', 'base'][0]:.1f} s; "
          f"target < {TARGET_RERUN_S:.0f} s)")
    print(f"results tables: {rows} rows compared, " + ("identical" if not problems else "DIFFERENT")
          + (f" (columns the base has not, not compared: {', '.join(added)})" if added else ""))
    for problem in problems:
        print(f"  {problem}")
    sys.exit(1 if problems or not rows else 0)


if __name__ == "__main__":
    main()
