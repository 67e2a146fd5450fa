"""fsmi gallery: one row per (case, mask condition) with inputs, GT, outputs and scores; offline; every
text escaped; and in a real browser (headless Chromium), filters and sorting show the right rows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.quickstart import QuickstartConfig, quickstart
from fsmi_bench.report.gallery import GalleryConfig, build_gallery

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

    counts, _ = shown("")
    assert counts == {"rows": 36, "shown": 36, "images": 2 * 9 * 5 + 2 * 9 * 6}  # single: no subject image
    counts, dom = shown("mask=circle&kind=multi")
    assert counts == {"rows": 2, "shown": 2, "images": 2 * 6}  # input, subject, GT, 3 outputs
    counts, _ = shown("kind=multi&method=copy-paste")
    assert counts == {"rows": 18, "shown": 18, "images": 18 * 4}
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
