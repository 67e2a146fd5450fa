"""``fsmi gallery``: a static HTML page of a benchmark's cases with every method's output and scores.

One row per (case, mask condition): the input with the mask drawn on it, the subject (multi-image
cases), the ground truth, then each run's output with its metric values. The page sorts by any metric
(worst cases first by default) and filters by method, mask type, op, scenario and kind; the state lives
in the URL's ``#`` part, so a view can be shared as a link.

Offline by construction: one ``index.html`` with inline CSS, script and data, plus JPEG thumbnails
under ``thumbs/`` (longest side ``thumb_size`` px); each thumbnail links to its full-size PNG by a
relative path into the benchmark or run folder. The page builds only the rows of the current page
(``PAGE_SIZE``), so 205 cases x 9 masks x several methods open at once. Every text reaches the page
through ``textContent`` or as JSON with ``<``, ``>`` and ``&`` escaped, never as HTML.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text

THUMBS_DIR = "thumbs"
PAGE_SIZE = 60
MASK_COLOUR = (255, 40, 40)  # the drawn mask: a red fill at MASK_ALPHA with a solid outline
MASK_ALPHA = 0.35


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
    thumbnails: int  # thumbnail files the page uses


def _thumbnail(source: Path, target: Path, size: int, mask: Path | None = None) -> None:
    """Write a JPEG of ``source`` (the ``mask`` drawn on it) no larger than ``size`` px; skipped when
    ``target`` is newer than its sources, so a rerun only does what changed."""
    sources = [source] + ([mask] if mask is not None else [])
    if target.is_file() and all(target.stat().st_mtime_ns >= path.stat().st_mtime_ns for path in sources):
        return
    import numpy as np
    from PIL import Image, ImageFilter

    with Image.open(source) as opened:
        image = opened.convert("RGB")
    if mask is not None:
        with Image.open(mask) as opened:
            drawn = np.asarray(opened.convert("L")) > 127
        pixels = np.asarray(image).astype(np.float32)
        colour = np.array(MASK_COLOUR, dtype=np.float32)
        pixels[drawn] = (1 - MASK_ALPHA) * pixels[drawn] + MASK_ALPHA * colour
        mask_image = Image.fromarray(drawn.astype(np.uint8) * 255)
        # The outline keeps thin or open masks visible after the thumbnail shrinks them.
        edge = np.asarray(mask_image.filter(ImageFilter.MaxFilter(5))) > 0
        edge &= ~(np.asarray(mask_image.filter(ImageFilter.MinFilter(3))) > 0)
        pixels[edge] = colour
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    image.save(temporary, format="JPEG", quality=85)
    os.replace(temporary, target)


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
    for row in valid.itertuples(index=False):
        if math.isfinite(row.value):
            values.setdefault((row.method, row.case_id, row.mask_type), {})[row.metric] = float(row.value)
    return metrics, values


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _json_for_script(data) -> str:
    """JSON that cannot end its ``<script>`` element nor open another: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def build_gallery(config: GalleryConfig) -> GalleryResult:
    """Write ``config.out/index.html`` and its thumbnails; returns what the page holds."""
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.io import ensure_writable_dir
    from fsmi_bench.run.folder import load_run, output_path

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
    case_index = {case_id: index for index, case_id in enumerate(benchmark.case_ids())}
    rows, thumbnails = [], set()
    manifest_rows = sorted(benchmark.rows, key=lambda row: (row.kind, row.case_id, row.mask_type))
    iterator = manifest_rows
    if config.progress:
        from tqdm import tqdm

        iterator = tqdm(manifest_rows, desc="gallery", unit="row")

    def thumb(source: Path, name: str, mask: Path | None = None) -> dict:
        target = thumbs / name
        _thumbnail(source, target, config.thumb_size, mask)
        thumbnails.add(target)
        return {"thumb": _relative(target, out), "full": _relative(source, out)}

    for row in iterator:
        folder = f"{case_index[row.case_id]:04d}"
        mask_path = benchmark.path(row.mask)
        entry = {
            "case": row.case_id, "kind": row.kind, "op": row.op, "scenario": row.scenario,
            "complexity": row.complexity, "mask": row.mask_type, "iou": round(float(row.mask_iou), 3),
            "instruction": row.instruction,
            "input": thumb(benchmark.path(row.scene), f"{folder}/input-{row.mask_type}.jpg", mask_path),
            "gt": thumb(benchmark.path(row.gt), f"{folder}/gt.jpg"),
            "subject": thumb(benchmark.path(row.subject), f"{folder}/subject.jpg") if row.subject else None,
            "outputs": [],
        }
        for method_number, run in enumerate(runs):
            source = output_path(run.root, row.case_id, row.mask_type)
            failure = run.failures.get((row.case_id, row.mask_type), "")
            output = {"scores": values.get((run.method, row.case_id, row.mask_type), {})}
            if source.is_file():
                output.update(thumb(source, f"{folder}/{row.mask_type}-m{method_number}.jpg"))
            else:
                output["missing"] = failure or "no output"
            entry["outputs"].append(output)
        rows.append(entry)
    data = {"methods": list(methods), "metrics": [{"name": name, "higher": higher} for name, higher in metrics],
            "rows": rows, "page_size": PAGE_SIZE}
    title = f"fsmi gallery: {', '.join(methods)} on {benchmark.version}"
    index = out / "index.html"
    atomic_write_text(index, PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", _json_for_script(data)))
    return GalleryResult(index=index, rows=len(rows), methods=methods, thumbnails=len(thumbnails))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f6;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:8px 12px;z-index:1}
header h1{font-size:16px;margin:0 0 6px}
label{margin-right:10px;white-space:nowrap}
select,button{font:inherit}
#count{margin:6px 0 0;color:#555}
.row{display:flex;gap:8px;align-items:flex-start;background:#fff;margin:8px 12px;padding:8px;border:1px solid #ddd;
  border-radius:4px;overflow-x:auto}
.meta{width:190px;flex:none;font-size:12px}
.meta b{font-size:13px}
figure{margin:0;flex:none;text-align:center;font-size:12px}
figure img{display:block;max-width:160px;max-height:160px;border:1px solid #ccc;background:#eee}
figcaption{max-width:160px;overflow-wrap:anywhere}
.score{color:#555}.score.sel{color:#000;font-weight:bold}
.missing{width:160px;height:120px;display:flex;align-items:center;justify-content:center;background:#fee;
  border:1px dashed #c66;color:#a33;padding:4px;box-sizing:border-box}
#more{margin:8px 12px 24px}
</style></head>
<body>
<header><h1 id="title"></h1>
<div id="controls"></div>
<p id="count"></p></header>
<main id="rows"></main>
<button id="more" type="button">Show more</button>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
document.getElementById("title").textContent = document.title;
const FILTERS = [["kind", "kind"], ["mask", "mask type"], ["op", "op"], ["scenario", "scenario"]];
const state = {metric: DATA.metrics.length ? DATA.metrics[0].name : "", by: "mean", order: "worst",
               method: "all", kind: "all", mask: "all", op: "all", scenario: "all", shown: DATA.page_size};
function el(tag, text, cls) { const node = document.createElement(tag); if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls; return node; }
function distinct(key) { return [...new Set(DATA.rows.map(row => row[key]))].sort(); }
function select(name, label, options) {
  const wrap = el("label", label + " "); const box = el("select"); box.id = "f-" + name;
  for (const [value, text] of options) { const option = el("option", text); option.value = value; box.append(option); }
  box.value = state[name]; box.addEventListener("change", () => { state[name] = box.value; state.shown = DATA.page_size;
    render(); }); wrap.append(box); document.getElementById("controls").append(wrap); }
function readHash() { for (const part of location.hash.slice(1).split("&")) { const [key, value] = part.split("=");
  if (key in state && value !== undefined) state[key] = key === "shown" ? Number(value) : decodeURIComponent(value); } }
function writeHash() { const parts = []; for (const key of ["metric", "by", "order", "method", ...FILTERS.map(f => f[0])])
  parts.push(key + "=" + encodeURIComponent(state[key])); history.replaceState(null, "", "#" + parts.join("&")); }
function methodIndexes() { return state.method === "all" ? DATA.methods.map((_, i) => i) : [DATA.methods.indexOf(state.method)]; }
function sortValue(row) {
  const picked = state.by === "mean" ? methodIndexes() : [DATA.methods.indexOf(state.by)];
  const found = picked.map(i => row.outputs[i].scores[state.metric]).filter(v => typeof v === "number");
  return found.length ? found.reduce((a, b) => a + b, 0) / found.length : null; }
function figure(image, caption, scores) {
  const fig = el("figure");
  if (image && image.thumb) { const link = el("a"); link.href = image.full; const img = el("img"); img.src = image.thumb;
    img.loading = "lazy"; img.alt = caption; link.append(img); fig.append(link); }
  else fig.append(el("div", image && image.missing ? image.missing : "no image", "missing"));
  fig.append(el("figcaption", caption));
  if (scores) for (const metric of DATA.metrics) if (metric.name in scores)
    fig.append(el("div", metric.name + " " + scores[metric.name].toFixed(3),
                  "score" + (metric.name === state.metric ? " sel" : "")));
  return fig; }
function render() {
  writeHash();
  let rows = DATA.rows.filter(row => FILTERS.every(([key]) => state[key] === "all" || row[key] === state[key]));
  const metric = DATA.metrics.find(m => m.name === state.metric);
  if (metric) { const sign = (metric.higher ? 1 : -1) * (state.order === "worst" ? 1 : -1);
    const keyed = rows.map(row => [sortValue(row), row]);
    keyed.sort((a, b) => a[0] === null ? (b[0] === null ? 0 : 1) : b[0] === null ? -1 : sign * (a[0] - b[0]));
    rows = keyed.map(pair => pair[1]); }
  const container = document.getElementById("rows"); container.replaceChildren();
  const visible = rows.slice(0, state.shown); const indexes = methodIndexes();
  for (const row of visible) {
    const card = el("div", undefined, "row"); card.dataset.case = row.case; card.dataset.mask = row.mask;
    const value = sortValue(row); card.dataset.value = value === null ? "" : String(value);
    const meta = el("div", undefined, "meta"); meta.append(el("b", row.case + " / " + row.mask), el("br"),
      el("span", row.kind + ", " + row.op + ", " + row.scenario + (row.complexity !== "none" ? ", " + row.complexity : "")),
      el("br"), el("span", "mask IoU " + row.iou), el("br"), el("i", row.instruction));
    card.append(meta, figure(row.input, "input + mask"));
    if (row.subject) card.append(figure(row.subject, "subject"));
    card.append(figure(row.gt, "ground truth"));
    for (const i of indexes) card.append(figure(row.outputs[i], DATA.methods[i], row.outputs[i].scores));
    container.append(card); }
  const images = container.querySelectorAll("img").length;
  const count = document.getElementById("count");
  count.textContent = "showing " + visible.length + " of " + rows.length + " rows (" + DATA.rows.length +
    " in all), " + images + " images" + (metric ? "; sorted by " + metric.name + ", " + state.order + " first" : "");
  count.dataset.rows = rows.length; count.dataset.shown = visible.length; count.dataset.images = images;
  document.getElementById("more").hidden = visible.length >= rows.length; }
readHash();
select("metric", "sort by", DATA.metrics.map(m => [m.name, m.name + (m.higher ? " (higher is better)" : " (lower is better)")]));
select("by", "of", [["mean", "mean of shown methods"], ...DATA.methods.map(m => [m, m])]);
select("order", "", [["worst", "worst first"], ["best", "best first"]]);
select("method", "method", [["all", "all"], ...DATA.methods.map(m => [m, m])]);
for (const [key, label] of FILTERS) select(key, label, [["all", "all"], ...distinct(key).map(v => [v, v])]);
document.getElementById("more").addEventListener("click", () => { state.shown += DATA.page_size; render(); });
render();
</script>
</body></html>
"""
