"""The gallery's one HTML file: inline CSS and script, the data as JSON (``__DATA__``), no external resource.

Every text reaches the page through ``textContent``, never as HTML. The view (sort, filters, what each
cell shows) lives in the URL's ``#`` part; a part that does not decode (a bad %-escape) or names an
unknown option is left out, so any link shows rows.
"""

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
#count,#legend{margin:6px 0 0;color:#555}
#notes{font-size:12px;color:#444;margin:4px 0 0}#notes summary{cursor:pointer}#notes li{margin:2px 0}
.row{display:flex;gap:8px;align-items:flex-start;background:#fff;margin:8px 12px;padding:8px;border:1px solid #ddd;
  border-radius:4px;overflow-x:auto}
.meta{width:190px;flex:none;font-size:12px}
.meta b{font-size:13px}
figure{margin:0;flex:none;text-align:center;font-size:12px}
.strip{display:flex;gap:2px}
figure img{display:block;max-width:160px;max-height:160px;border:1px solid #ccc;background:#eee}
figure img.zoom{border-color:#7a7}figure img.diff{border-color:#c9c;background:#000}
figcaption{max-width:324px;overflow-wrap:anywhere}
.score{color:#555}.score.sel{color:#000;font-weight:bold}
.missing{width:160px;height:120px;display:flex;align-items:center;justify-content:center;background:#fee;
  border:1px dashed #c66;color:#a33;padding:4px;box-sizing:border-box;overflow-wrap:anywhere;overflow:hidden}
.missing.bad{background:#fff3d6;border-color:#c90;color:#850}
#more{margin:8px 12px 24px}
</style></head>
<body>
<header><h1 id="title"></h1>
<div id="controls"></div>
<p id="legend"></p>
<details id="notes"><summary>Methods that behave alike</summary><ul id="alike"></ul></details>
<p id="count"></p></header>
<main id="rows"></main>
<button id="more" type="button">Show more</button>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
document.getElementById("title").textContent = document.title;
const FILTERS = [["kind", "kind"], ["mask", "mask type"], ["op", "op"], ["scenario", "scenario"]];
const VIEWS = {all: ["thumb", "zoom", "diff"], output: ["thumb"], zoom: ["zoom"], diff: ["diff"]};
const LABELS = {thumb: "whole image", zoom: "zoom on the edit region", diff: "difference from the ground truth"};
const state = {metric: DATA.metrics.length ? DATA.metrics[0].name : "", by: "mean", order: "worst",
               method: "all", kind: "all", mask: "all", op: "all", scenario: "all", view: "all",
               shown: DATA.page_size};
function el(tag, text, cls) { const node = document.createElement(tag); if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls; return node; }
function distinct(key) { return [...new Set(DATA.rows.map(row => row[key]))].sort(); }
function select(name, label, options) {
  const wrap = el("label", label + " "); const box = el("select"); box.id = "f-" + name;
  for (const [value, text] of options) { const option = el("option", text); option.value = value; box.append(option); }
  box.value = state[name];
  if (box.value !== state[name]) { state[name] = options.length ? options[0][0] : ""; box.value = state[name]; }
  box.addEventListener("change", () => { state[name] = box.value; state.shown = DATA.page_size;
    render(); }); wrap.append(box); document.getElementById("controls").append(wrap); }
function readHash() { for (const part of location.hash.slice(1).split("&")) { const [key, value] = part.split("=");
  if (!(key in state) || value === undefined) continue;
  let text; try { text = decodeURIComponent(value); } catch (error) { continue; }  // a bad %-escape: left out
  if (key !== "shown") state[key] = text;
  else if (/^[0-9]+$/.test(text) && Number(text) > 0) state.shown = Number(text); } }
function writeHash() { const parts = [];
  for (const key of ["metric", "by", "order", "method", "view", ...FILTERS.map(f => f[0])])
    parts.push(key + "=" + encodeURIComponent(state[key])); history.replaceState(null, "", "#" + parts.join("&")); }
function methodIndexes() {
  return state.method === "all" ? DATA.methods.map((_, i) => i) : [DATA.methods.indexOf(state.method)]; }
function sortValue(row) {
  const picked = state.by === "mean" ? methodIndexes() : [DATA.methods.indexOf(state.by)];
  const found = picked.map(i => row.outputs[i].scores[state.metric]).filter(v => typeof v === "number");
  return found.length ? found.reduce((a, b) => a + b, 0) / found.length : null; }
function figure(image, caption, scores) {
  const fig = el("figure"); const strip = el("div", undefined, "strip");
  if (image && image.thumb) {
    let kinds = VIEWS[state.view].filter(kind => image[kind]);
    if (!kinds.length) kinds = ["thumb"];
    for (const kind of kinds) { const link = el("a"); link.href = image.full; const img = el("img");
      img.src = image[kind]; img.loading = "lazy"; img.alt = caption + ": " + LABELS[kind]; img.title = LABELS[kind];
      img.className = kind; link.append(img); strip.append(link); } }
  else if (image && image.bad) strip.append(el("div", image.bad, "missing bad"));
  else strip.append(el("div", image && image.missing ? image.missing : "no image", "missing"));
  fig.append(strip, el("figcaption", caption));
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
      el("span", row.kind + ", " + row.op + ", " + row.scenario
                 + (row.complexity !== "none" ? ", " + row.complexity : "")),
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
select("metric", "sort by",
       DATA.metrics.map(m => [m.name, m.name + (m.higher ? " (higher is better)" : " (lower is better)")]));
select("by", "of", [["mean", "mean of shown methods"], ...DATA.methods.map(m => [m, m])]);
select("order", "", [["worst", "worst first"], ["best", "best first"]]);
select("method", "method", [["all", "all"], ...DATA.methods.map(m => [m, m])]);
for (const [key, label] of FILTERS) select(key, label, [["all", "all"], ...distinct(key).map(v => [v, v])]);
select("view", "show", [["all", "output, zoom, difference"], ["output", "outputs only"], ["zoom", "zooms only"],
                         ["diff", "differences only"]]);
document.getElementById("legend").textContent = DATA.legend;
for (const line of DATA.alike) document.getElementById("alike").append(el("li", line));
document.getElementById("notes").hidden = !DATA.alike.length;
document.getElementById("more").addEventListener("click", () => { state.shown += DATA.page_size; render(); });
render();
</script>
</body></html>
"""
