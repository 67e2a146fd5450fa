"""fsmi gallery: one row per (case, mask condition) with inputs, GT, outputs (with a zoom on the edit region
and a difference map) and scores; offline; every text escaped; pictures named by content (never stale); an
unreadable output is a marked cell; and in a real browser (headless Chromium), filters, sorting and links
with bad %-escapes show the right rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import load_rgb
from fsmi_bench.quickstart import QuickstartConfig, quickstart
from fsmi_bench.report.gallery import GalleryConfig, build_gallery
from fsmi_bench.report.gallery_pictures import shrink

WEIGHTLESS = ("bg_psnr", "bg_ssim", "fg_psnr", "whole_psnr")
HOSTILE = '<img src=x onerror="document.title=1">|evil & </script>'
CHROMIUM = next((name for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    result = quickstart(QuickstartConfig(out=root / "q", metrics=WEIGHTLESS, single=2, multi=2, size=64,
                                         progress=False))
    return root, result


def _page_data(index: Path) -> dict:
    text = index.read_text()
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


def test_quickstart_writes_a_gallery_with_every_row_and_score(made):
    root, result = made
    data = _page_data(result.gallery)
    assert data["methods"] == ["identity", "copy-paste", "inpaint"]
    assert len(data["rows"]) == (2 + 2) * 9
    assert [metric["name"] for metric in data["metrics"]] == sorted(WEIGHTLESS)
    scores = pd.read_parquet(result.results[1])
    row = next(row for row in data["rows"] if row["kind"] == "multi" and row["mask"] == "circle")
    expected = scores[(scores["case_id"] == row["case"]) & (scores["mask_type"] == "circle")
                      & (scores["metric"] == "fg_psnr")]["value"].iloc[0]
    assert row["outputs"][1]["scores"]["fg_psnr"] == pytest.approx(expected)
    gallery = result.gallery.parent
    for image in [row["input"], row["gt"], row["subject"], *row["outputs"]]:
        assert (gallery / image["thumb"]).is_file() and (gallery / image["full"]).is_file()
        assert not image["thumb"].startswith(("/", "http"))
    for image in [row["input"], row["gt"], *row["outputs"]]:  # a zoom beside each, a difference beside outputs
        assert (gallery / image["zoom"]).is_file()
    assert all((gallery / output["diff"]).is_file() for output in row["outputs"])
    text = result.gallery.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text  # nothing external


def _hostile_bench(root: Path) -> Path:
    """A copy of the benchmark whose instructions are full of HTML and Markdown (names that become paths,
    such as method names, are refused upstream; free text must be escaped where it is shown)."""
    bench = root / "hostile-bench"
    if not bench.exists():
        shutil.copytree(root / "q" / "bench", bench)
        manifest = bench / "manifest.jsonl"
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        manifest.write_text("".join(json.dumps({**row, "instruction": HOSTILE}) + "\n" for row in rows))
    return bench


def _run_on(bench: Path, run: Path, out: Path) -> Path:
    """A copy of ``run`` recorded as made on ``bench`` (same images, the edited manifest's sha256)."""
    from fsmi_bench.benchmark.manifest import load_benchmark

    if not out.exists():
        shutil.copytree(run, out)
        info = json.loads((out / "run.json").read_text())
        info["manifest_sha256"] = load_benchmark(bench).manifest_sha256
        (out / "run.json").write_text(json.dumps(info))
    return out


def test_every_text_is_escaped(made):
    root, result = made
    bench = _hostile_bench(root)
    run = _run_on(bench, root / "q" / "runs" / "copy-paste", root / "hostile-copy-paste")
    out = build_gallery(GalleryConfig(runs=(run,), bench=bench,
                                      out=root / "hostile-gallery", results=(result.results[1],)))
    text = out.index.read_text()
    assert "<img src=x" not in text and "</script>|" not in text
    assert text.count("</script>") == 2  # the data and the code, nothing from the instructions
    assert {row["instruction"] for row in _page_data(out.index)["rows"]} == {HOSTILE}


def _chromium(url: str, user_data: Path, *extra: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={user_data}",
             "--virtual-time-budget=5000"]
    done = subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run does it)")
def test_in_a_browser_filters_sort_and_show_the_right_rows(made, tmp_path):
    root, result = made
    url = result.gallery.resolve().as_uri()

    def shown(fragment: str) -> tuple[dict, str]:
        dom = _chromium(f"{url}#{fragment}", tmp_path / f"profile-{len(list(tmp_path.iterdir()))}", "--dump-dom")
        count = re.search(r'<p id="count" data-rows="(\d+)" data-shown="(\d+)" data-images="(\d+)"', dom)
        assert count, dom[-2000:]
        return {"rows": int(count.group(1)), "shown": int(count.group(2)), "images": int(count.group(3))}, dom

    # Input and GT with their zooms, each output with its zoom and difference map; single: no subject image.
    counts, _ = shown("")
    assert counts == {"rows": 36, "shown": 36, "images": 2 * 9 * 13 + 2 * 9 * 14}
    counts, _ = shown("view=output")
    assert counts == {"rows": 36, "shown": 36, "images": 2 * 9 * 5 + 2 * 9 * 6}
    counts, dom = shown("mask=circle&kind=multi&view=output")
    assert counts == {"rows": 2, "shown": 2, "images": 2 * 6}  # input, subject, GT, 3 outputs
    counts, _ = shown("kind=multi&method=copy-paste")
    assert counts == {"rows": 18, "shown": 18, "images": 18 * (2 + 1 + 2 + 3)}
    counts, _ = shown("kind=multi&view=diff&method=inpaint")
    assert counts == {"rows": 18, "shown": 18, "images": 18 * 4}  # input, subject, GT, one difference map
    # A link with a bad %-escape, an unknown option or a bad count still shows rows; the good parts apply.
    counts, _ = shown("kind=multi&mask=%E0%A4%A&op=%&view=%zz&shown=-3")
    assert counts == {"rows": 18, "shown": 18, "images": 18 * 14}
    counts, _ = shown("kind=nonsense&metric=none&shown=abc")
    assert counts["rows"] == 36 and counts["shown"] == 36
    # A gallery without scores, opened by a link that names a metric.
    plain = build_gallery(GalleryConfig(runs=(root / "q" / "runs" / "identity",), bench=root / "q" / "bench",
                                        out=root / "plain-browser"))
    dom = _chromium(plain.index.resolve().as_uri() + "#metric=fg_psnr&view=zoom", tmp_path / "profile-plain",
                    "--dump-dom")
    # zooms only: input, GT and output (3 a row), and the subject on multi-image rows
    assert re.search(r'<p id="count" data-rows="36" data-shown="36" data-images="126"', dom), dom[-2000:]
    # Worst first: fg_psnr (higher is better) ascends down the page; rows without it come last.
    _, dom = shown("metric=fg_psnr&kind=multi&by=copy-paste")
    values = [float(value) for value in re.findall(r'class="row"[^>]*data-value="([^"]+)"', dom)]
    assert len(values) == 18 and values == sorted(values)
    # The hostile instruction shows as text in the browser, and no image element came from it.
    bench = _hostile_bench(root)
    run = _run_on(bench, root / "q" / "runs" / "identity", root / "hostile-identity")
    hostile = build_gallery(GalleryConfig(runs=(run,), bench=bench,
                                          out=root / "hostile-browser", results=(result.results[0],)))
    dom = _chromium(hostile.index.resolve().as_uri() + "#mask=full", tmp_path / "profile-hostile", "--dump-dom")
    assert "&lt;img src=x" in dom and 'src="x"' not in dom and "<title>1</title>" not in dom
    screenshot = tmp_path / "gallery.png"
    _chromium(f"{url}#metric=fg_psnr&kind=multi", tmp_path / "profile-shot", f"--screenshot={screenshot}",
              "--window-size=1400,1000")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    if os.environ.get("FSMI_SCREENSHOT_DIR"):  # keep the picture for a person to look at
        shutil.copy(screenshot, Path(os.environ["FSMI_SCREENSHOT_DIR"]) / "gallery.png")


def test_bad_inputs_are_one_line_errors(made, tmp_path):
    root, _ = made
    bench, runs = root / "q" / "bench", root / "q" / "runs"
    with pytest.raises(BadInputError, match="two run folders of method 'identity'"):
        build_gallery(GalleryConfig(runs=(runs / "identity", runs / "identity"), bench=bench, out=tmp_path / "g"))
    result = CliRunner().invoke(main, ["gallery", str(tmp_path), "--bench", str(bench), "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "is not a run folder" in result.output
    result = CliRunner().invoke(main, ["gallery", str(runs / "inpaint"), "--bench", str(tmp_path),
                                       "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "not a benchmark folder" in result.output
    result = CliRunner().invoke(main, ["gallery", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def _copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _thumbnail_of(gallery: Path, picture: str):
    from PIL import Image

    with Image.open(gallery / picture) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.float64)


def _distance(gallery: Path, picture: str, source: Path, size: int = 192) -> float:
    """Mean absolute difference (0-255) between the JPEG ``picture`` and the thumbnail of ``source``."""
    expected = shrink(load_rgb(source), size).astype(np.float64)
    shown = _thumbnail_of(gallery, picture)
    return float(np.abs(shown - expected).mean()) if shown.shape == expected.shape else 255.0


def test_pictures_follow_content_not_position(made, tmp_path):
    """Swapping the runs, or changing an output under the same name with an older time, never shows a stale
    picture; pictures the page no longer uses are removed."""
    root, result = made
    bench = root / "q" / "bench"
    identity = _copy_run(root / "q" / "runs" / "identity", tmp_path / "identity")
    inpaint = _copy_run(root / "q" / "runs" / "inpaint", tmp_path / "inpaint")
    out = tmp_path / "gallery"
    pictures = {}
    for runs in ((identity, inpaint), (inpaint, identity)):
        build_gallery(GalleryConfig(runs=runs, bench=bench, out=out))
        data = _page_data(out / "index.html")
        for row in data["rows"]:
            for run, output in zip(runs, row["outputs"]):
                assert pictures.setdefault((run.name, row["case"], row["mask"]), output["thumb"]) == output["thumb"]
        for row in data["rows"][::5]:
            own, other = (run / "outputs" / row["case"] / f"{row['mask']}.png" for run in runs)
            if own.read_bytes() != other.read_bytes():  # each picture is its own run's output, not the other's
                assert _distance(out, row["outputs"][0]["thumb"], own) < _distance(out, row["outputs"][0]["thumb"],
                                                                                    other)
    # An output replaced by other pixels, its time set back before the picture's: the new pixels show.
    row = next(row for row in data["rows"] if row["kind"] == "single")
    changed = inpaint / "outputs" / row["case"] / f"{row['mask']}.png"
    old_picture = next(output["thumb"] for output in row["outputs"])
    image = load_rgb(changed)
    from fsmi_bench.io import save_png

    save_png(changed, 255 - image)
    os.utime(changed, ns=(1, 1))
    assert _distance(out, old_picture, changed) > 20  # the old picture would be a stale one
    build_gallery(GalleryConfig(runs=(inpaint, identity), bench=bench, out=out))
    data = _page_data(out / "index.html")
    now = next(r for r in data["rows"] if r["case"] == row["case"] and r["mask"] == row["mask"])
    assert now["outputs"][0]["thumb"] != old_picture
    assert _distance(out, now["outputs"][0]["thumb"], changed) < 20
    used = {picture for r in data["rows"] for cell in [r["input"], r["gt"], r["subject"], *r["outputs"]] if cell
            for key, picture in cell.items() if key in ("thumb", "zoom", "diff")}
    on_disk = {path.relative_to(out).as_posix() for path in (out / "thumbs").rglob("*.jpg")}
    assert on_disk == used and not (out / "thumbs" / old_picture.split("/", 1)[1]).exists()


def test_an_unreadable_output_is_a_marked_cell(made, tmp_path):
    root, result = made
    bench = root / "q" / "bench"
    run = _copy_run(root / "q" / "runs" / "copy-paste", tmp_path / "copy-paste")
    broken = sorted((run / "outputs").rglob("*.png"))[3]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    gallery = build_gallery(GalleryConfig(runs=(run,), bench=bench, out=tmp_path / "g", results=(result.results[1],)))
    assert gallery.unreadable == 1 and gallery.rows == 36
    cells = {(row["case"], row["mask"]): row["outputs"][0] for row in _page_data(gallery.index)["rows"]}
    bad = cells[broken.parent.name, broken.stem]
    assert "cannot read image" in bad["bad"] and "thumb" not in bad and bad["full"].endswith(broken.name)
    assert sum("bad" in cell for cell in cells.values()) == 1
    assert all("thumb" in cell for key, cell in cells.items() if key != (broken.parent.name, broken.stem))


def test_every_picture_is_decoded_under_the_pixel_limit(made, tmp_path, monkeypatch):
    """The one decoder (io.decode_image) opens every image: above the limit, cells are marked, not decoded."""
    root, _ = made
    monkeypatch.setenv("FSMI_MAX_IMAGE_PIXELS", "100")
    gallery = build_gallery(GalleryConfig(runs=(root / "q" / "runs" / "identity",), bench=root / "q" / "bench",
                                          out=tmp_path / "g"))
    rows = _page_data(gallery.index)["rows"]
    cells = [cell for row in rows for cell in (row["input"], row["gt"], row["outputs"][0])]
    assert all("above the limit of 100" in cell["bad"] for cell in cells)
    assert gallery.thumbnails == 0 and not list((tmp_path / "g").rglob("*.jpg"))


def test_the_page_says_which_methods_gave_identical_outputs(made):
    root, result = made
    data = _page_data(result.gallery)
    methods = data["methods"]
    expected = []
    for first, second in [(0, 1), (0, 2), (1, 2)]:
        groups: dict = {}
        for row in data["rows"]:
            files = [(root / "q" / "runs" / methods[index] / "outputs" / row["case"] / f"{row['mask']}.png")
                     .read_bytes() for index in (first, second)]
            same, total = groups.get((row["kind"], row["op"]), (0, 0))
            groups[row["kind"], row["op"]] = (same + (files[0] == files[1]), total + 1)
        expected += [f"{methods[first]} and {methods[second]}: identical outputs on {same} of {total} {kind}-image "
                     f"{op} rows" for (kind, op), (same, total) in sorted(groups.items()) if same]
    assert any(line.startswith("identity and copy-paste") for line in expected)  # single-image add or replace
    assert [line for line in data["alike"] if ": identical outputs on " in line] == expected
    assert any("inpaints remove cases as inpaint does" in line for line in data["alike"])


def test_zoom_difference_and_mask_pictures_keep_small_things_visible():
    from fsmi_bench.report.gallery_pictures import REGION_COLOUR, ZOOM_MIN_SIDE, difference, with_mask, zoom_box

    region = np.zeros((512, 384), dtype=bool)
    region[500:506, 10:14] = True  # a small edit near the bottom edge
    top, left, bottom, right = zoom_box(region)
    assert bottom - top == right - left == ZOOM_MIN_SIDE and 0 <= top and bottom <= 512 and 0 <= left
    assert region[top:bottom, left:right].sum() == region.sum()  # the whole region is in the zoom
    region[300:340, 150:190] = True
    # both parts (rows 300-506, columns 10-190), grown by a quarter of 206 px, moved inside the image
    assert zoom_box(region) == (202, 0, 512, 284)
    assert zoom_box(np.zeros((40, 60), bool)) == (0, 0, 40, 60)
    wide = np.zeros((100, 300), bool)
    wide[40:60, 0:300] = True
    assert zoom_box(wide) == (0, 0, 100, 300)  # grown, kept inside the image
    # One changed pixel of a 512 px image still shows after shrinking to 64 px; equal images are black.
    gt = np.full((512, 384, 3), 90, np.uint8)
    output = gt.copy()
    output[200, 100] = (130, 90, 90)
    picture = difference(output, gt, np.zeros((512, 384), bool), 64)
    assert picture.shape == (64, 48, 3) and picture.max() > 100 and (picture > 0).any(axis=2).sum() <= 4
    assert not difference(gt, gt, np.zeros((512, 384), bool), 64).any()
    outlined = difference(gt, gt, region, 64)
    assert (outlined.reshape(-1, 3) == REGION_COLOUR).all(axis=1).any()
    # A one-pixel-wide open stroke of a mask still shows (outline in the mask's colour) at an eighth of the size.
    stroke = np.zeros((512, 384), bool)
    stroke[100:400, 200] = True
    drawn = with_mask(gt, stroke, 64)
    assert (np.abs(drawn.astype(int) - 90).max(axis=2) > 60).sum() >= 30
