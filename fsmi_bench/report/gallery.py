"""``fsmi gallery``: a static HTML page of a benchmark's cases with every method's output and scores.

One row per (case, mask condition): the input with the mask drawn on it, the subject (multi-image
cases), the ground truth, then each run's output with its metric values. The page sorts by any metric
(worst cases first by default) and filters by method, mask type, op, scenario and kind; the state lives
in the URL's ``#`` part, so a view can be shared as a link.

Beside each output: a zoom on the edit region (the same box for every image of a case) and its
difference from the ground truth, where a small edit that a 160 px thumbnail hides shows. A note says
which methods gave identical outputs, and for which operations (copy-paste inpaints ``remove`` cases as
``inpaint`` does).

Offline by construction: one ``index.html`` with inline CSS, script and data, plus JPEG pictures under
``thumbs/`` (longest side ``thumb_size`` px, named by content: ``gallery_pictures``), made on every core;
each links to its full-size PNG by a relative path into the benchmark or run folder. An output that
cannot be read is a marked cell. The page builds only the rows of the current page (``PAGE_SIZE``), so
205 cases x 9 masks x several methods open at once. Every text reaches the page through ``textContent``
or as JSON with ``<``, ``>`` and ``&`` escaped, never as HTML.
"""

from __future__ import annotations

import html
import json
import math
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text
from fsmi_bench.report.gallery_page import PAGE
from fsmi_bench.report.gallery_pictures import DIFFERENCE_FULL_SCALE, CasePictures, Source, make_case_pictures

THUMBS_DIR = "thumbs"
PAGE_SIZE = 60
# What the reference floors do, where the page shows them (``alike``: which outputs came out identical).
FLOOR_NOTES = {
    "identity": "identity returns the input unchanged.",
    "copy-paste": "copy-paste pastes the subject into the mask's box; with no subject (single-image cases) it "
                  "inpaints remove cases as inpaint does, and returns add and replace scenes unchanged.",
    "inpaint": "inpaint fills the mask from its surroundings for every operation (it clears the marked area).",
}
LEGEND = ("Each output: the whole image, a zoom on the edit region (the same box for every picture of a "
          "case), and its difference from the ground truth (black: equal; red to white: a channel differs by up "
          f"to {DIFFERENCE_FULL_SCALE} of 255 levels and more; cyan: the edit region's outline). Red on the "
          "input: the mask. A picture links to its full-size file.")


@dataclass(frozen=True)
class GalleryConfig:
    """runs: run folders (``fsmi run``); bench: their benchmark; out: the gallery folder; results: results
    tables (``fsmi score``) whose values are shown beside the outputs; thumb_size: longest side, px."""

    runs: tuple[Path, ...]
    bench: Path
    out: Path
    results: tuple[Path, ...] = ()
    thumb_size: int = 192
    progress: bool = False


@dataclass(frozen=True)
class GalleryResult:
    index: Path
    rows: int  # (case, mask condition) rows in the page
    methods: tuple[str, ...]
    thumbnails: int  # picture files the page uses
    unreadable: int = 0  # cells marked because their file could not be read


def _scores(results: tuple[Path, ...], methods: tuple[str, ...]):
    """(metrics [(name, higher_is_better)], values {(method, case_id, mask_type): {metric: value}})."""
    if not results:
        return [], {}
    from fsmi_bench.report.results_table import load_results
    from fsmi_bench.schema import REPORTED

    frame = load_results(results)
    frame = frame[(frame["status"] != REPORTED) & frame["method"].isin(methods)]
    valid = frame[(frame["status"] == "ok")]
    metrics = [(metric, bool(higher)) for metric, higher in
               frame.groupby("metric", sort=True)["higher_is_better"].first().items()
               if (valid["metric"] == metric).any()]
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for method, case_id, mask_type, metric, value in zip(valid["method"], valid["case_id"], valid["mask_type"],
                                                         valid["metric"], valid["value"]):
        if math.isfinite(value):
            values.setdefault((method, case_id, mask_type), {})[metric] = float(value)
    return metrics, values


def _relative_root(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _json_for_script(data) -> str:
    """JSON that cannot end its ``<script>`` element nor open another: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _case_pictures(benchmark, rows, runs, recorded, output_path) -> CasePictures:
    first = rows[0]

    def source(relative, sha256):
        return Source(benchmark.path(relative), sha256)

    outputs = {}
    for number, run in enumerate(runs):
        for row in rows:
            path = output_path(run.root, row.case_id, row.mask_type)
            if (row.case_id, row.mask_type) not in run.failures and path.is_file():
                outputs[number, row.mask_type] = path, recorded[number].sha256(path)
    return CasePictures(
        scene=source(first.scene, first.scene_sha256), gt=source(first.gt, first.gt_sha256),
        region=source(first.region, first.region_sha256),
        subject=source(first.subject, first.subject_sha256) if first.subject else None,
        masks={row.mask_type: source(row.mask, row.mask_sha256) for row in rows}, outputs=outputs)


def _alike(methods: tuple[str, ...], rows: list[dict], digests: dict) -> list[str]:
    """What the floors do, then for each pair of methods and each (kind, op): how many outputs were identical."""
    lines = [FLOOR_NOTES[method] for method in methods if method in FLOOR_NOTES]
    for first in range(len(methods)):
        for second in range(first + 1, len(methods)):
            groups: dict[tuple[str, str], list[int]] = {}
            for row in rows:
                ours = digests.get((row["case"], first, row["mask"]))
                theirs = digests.get((row["case"], second, row["mask"]))
                if ours and theirs:
                    counts = groups.setdefault((row["kind"], row["op"]), [0, 0])
                    counts[0] += ours == theirs
                    counts[1] += 1
            for (kind, op), (same, total) in sorted(groups.items()):
                if same:
                    lines.append(f"{methods[first]} and {methods[second]}: identical outputs on {same} of {total} "
                                 f"{kind}-image {op} rows")
    return lines


def build_gallery(config: GalleryConfig) -> GalleryResult:
    """Write ``config.out/index.html`` and its pictures; returns what the page holds."""
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.io import ensure_writable_dir
    from fsmi_bench.run.folder import load_run, output_path
    from fsmi_bench.run.output_writer import VerifiedOutputs
    from fsmi_bench.workers import ordered_map

    if not config.runs:
        raise BadInputError("give at least one run folder (written by `fsmi run`)")
    if not 32 <= config.thumb_size <= 1024:
        raise BadInputError("--thumb-size must be between 32 and 1024 px")
    benchmark = load_benchmark(config.bench, verify=True)
    runs = [load_run(path) for path in config.runs]
    methods = tuple(run.method for run in runs)
    duplicated = sorted({method for method in methods if methods.count(method) > 1})
    if duplicated:
        raise BadInputError(f"two run folders of method {duplicated[0]!r}; give one run per method")
    for run in runs:
        recorded = run.info.get("manifest_sha256")
        if recorded and recorded != benchmark.manifest_sha256:
            raise BadInputError(f"{run.root} was run on another benchmark than {config.bench} "
                                "(manifest sha256 differs)")
    metrics, values = _scores(tuple(config.results), methods)
    out = ensure_writable_dir(config.out)
    thumbs = out / THUMBS_DIR
    bench_root = _relative_root(benchmark.root, out)
    run_roots = [_relative_root(run.root, out) for run in runs]
    by_case: dict[str, list] = {}
    for row in sorted(benchmark.rows, key=lambda row: (row.kind, row.case_id, row.mask_type)):
        by_case.setdefault(row.case_id, []).append(row)
    recorded = [VerifiedOutputs.of_run_folder(run.root) for run in runs]  # outputs' sha256, by their runs
    cases = [_case_pictures(benchmark, rows, runs, recorded, output_path) for rows in by_case.values()]
    made = ordered_map(lambda case: make_case_pictures(case, thumbs, config.thumb_size), cases)
    if config.progress:
        from tqdm import tqdm

        made = tqdm(made, total=len(cases), desc="gallery", unit="case")
    rows, used, digests, unreadable = [], set(), {}, 0

    def cell(picture: dict, full: str) -> dict:
        nonlocal unreadable
        unreadable += "bad" in picture
        shown = {kind: f"{THUMBS_DIR}/{name}" for kind, name in picture.items() if kind != "bad"}
        used.update(shown.values())
        return {**shown, **({"bad": picture["bad"]} if "bad" in picture else {}), "full": full}

    for case_rows, pictures in zip(by_case.values(), made):
        first = case_rows[0]
        for (number, mask_type), sha in pictures["sha256"].items():
            digests[first.case_id, number, mask_type] = sha
        gt = cell(pictures["gt"], posixpath.join(bench_root, first.gt))
        subject = cell(pictures["subject"], posixpath.join(bench_root, first.subject)) if first.subject else None
        for row in case_rows:
            entry = {
                "case": row.case_id, "kind": row.kind, "op": row.op, "scenario": row.scenario,
                "complexity": row.complexity, "mask": row.mask_type, "iou": round(float(row.mask_iou), 3),
                "instruction": row.instruction,
                "input": cell(pictures["input"][row.mask_type], posixpath.join(bench_root, row.scene)),
                "gt": gt, "subject": subject, "outputs": []}
            for number, run in enumerate(runs):
                output = {"scores": values.get((run.method, row.case_id, row.mask_type), {})}
                picture = pictures["outputs"].get((number, row.mask_type))
                if picture is not None:
                    relative = output_path(Path(), row.case_id, row.mask_type).as_posix()
                    output.update(cell(picture, posixpath.join(run_roots[number], relative)))
                else:
                    output["missing"] = run.failures.get((row.case_id, row.mask_type), "") or "no output"
                entry["outputs"].append(output)
            rows.append(entry)
    data = {"methods": list(methods), "metrics": [{"name": name, "higher": higher} for name, higher in metrics],
            "rows": rows, "page_size": PAGE_SIZE, "legend": LEGEND, "alike": _alike(methods, rows, digests)}
    title = f"fsmi gallery: {', '.join(methods)} on {benchmark.version}"
    index = out / "index.html"
    atomic_write_text(index, PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", _json_for_script(data)))
    _remove_unused_pictures(thumbs, used)
    return GalleryResult(index=index, rows=len(rows), methods=methods, thumbnails=len(used), unreadable=unreadable)


_PICTURE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}-[a-z-]+\.jpg")
_OLD_THUMBNAIL = re.compile(r"[0-9]{4}/(input-[\w.-]+|gt|subject|[\w.-]+-m[0-9]+)\.jpg")  # named by position


def _remove_unused_pictures(thumbs: Path, used: set[str]) -> None:
    """Delete the gallery's own pictures that the page no longer shows (of earlier pages, or named by
    position as before pictures were named by content); any other file is left alone."""
    if not thumbs.is_dir():
        return
    for path in thumbs.glob("*/*.jpg"):
        relative = path.relative_to(thumbs).as_posix()
        if f"{THUMBS_DIR}/{relative}" not in used and (_PICTURE_FILE.fullmatch(relative)
                                                        or _OLD_THUMBNAIL.fullmatch(relative)):
            try:
                path.unlink()
            except OSError:
                pass  # a picture left behind costs only disk
