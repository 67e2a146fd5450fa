"""Memory and start-up time of the streamed COCO training source (``--data coco:PATH``) as the folder grows.

Builds a COCO-format stand-in: N small photos (64 x 48 PNG) and ``annotations/instances_train.json``
in the real layout (``info``, ``licenses``, ``images`` with ``coco_url`` / ``flickr_url`` /
``date_captured``, the 80 categories of COCO 2017 with their supercategories, 7 polygon annotations
per image as in train2017's 860k / 118k, with ``area``, ``bbox``, ``iscrowd``), and a second folder
holding only the first 100 of them. Then, for each size, a fresh process imports the trainer's modules
(torch, accelerate, the loop: the process ``fsmi train`` is), opens the source (start-up: JSON read,
pycocotools index, train / held-out split), draws examples (at 64 px, the photos' size: at 512 px these
small objects are too short to composite) and reports its peak resident memory and how much of it came
after the imports (the index and the drawn examples). Target: peak RSS at the largest size under 1.5x the
peak at 100 images (memory must not grow with the photos, only with the annotation index).

    .venv/bin/python benchmarks/bench_coco_stream.py                          # 100 and 20,000 images
    .venv/bin/python benchmarks/bench_coco_stream.py --images 100 2000 --draw 50 --work /tmp/coco-stand-in
    .venv/bin/python benchmarks/bench_coco_stream.py --eager                  # also the whole-folder reader

``--eager`` also measures ``fsmi_bench``'s ``load_coco`` (what ``fsmi build`` uses, and training used
before streaming), which decodes every photo and mask at start, for comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH, HEIGHT = 64, 48
ANNOTATIONS_PER_IMAGE = 7
SUPERCATEGORIES = ["person", "vehicle", "outdoor", "animal", "accessory", "sports", "kitchen", "food",
                   "furniture", "electronic", "appliance", "indoor"]


def _categories() -> list[dict]:
    """80 categories with COCO 2017's ids (1..90 with gaps) and a supercategory each."""
    ids = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
    return [{"id": cid, "name": f"category {cid}", "supercategory": SUPERCATEGORIES[n % len(SUPERCATEGORIES)]}
            for n, cid in enumerate(ids)]


def _polygon(rng: np.random.Generator) -> tuple[list[float], float, list[float]]:
    """A star-shaped polygon of 12-40 points (COCO's are of that order), its area and bbox."""
    count = int(rng.integers(12, 41))
    cx, cy = rng.uniform(10, WIDTH - 10), rng.uniform(10, HEIGHT - 10)
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(4, 12, count)
    xs, ys = np.clip(cx + radii * np.cos(angles), 0, WIDTH), np.clip(cy + radii * np.sin(angles), 0, HEIGHT)
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
    points = [round(float(value), 2) for pair in zip(xs, ys) for value in pair]
    return points, round(area, 2), [round(float(xs.min()), 2), round(float(ys.min()), 2),
                                    round(float(xs.max() - xs.min()), 2), round(float(ys.max() - ys.min()), 2)]


def build_stand_in(root: Path, subsets: list[int]) -> dict[int, Path]:
    """One COCO folder per size in ``subsets``, the smaller ones the first images of the larger (same
    photos, same annotations); each folder holds its own photos (the reader refuses links out of it)."""
    from fsmi_bench.io import encode_png

    count = max(subsets)
    rng = np.random.default_rng(0)
    categories = _categories()
    pixels, images, annotations = [], [], []
    for number in range(1, count + 1):
        file_name = f"{number:012d}.png"
        pixels.append(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
        images.append({"license": 1 + number % 8, "file_name": file_name, "coco_url": f"http://images/{file_name}",
                       "height": HEIGHT, "width": WIDTH, "date_captured": "2013-11-14 16:28:13",
                       "flickr_url": f"http://farm/{file_name}", "id": number})
        for _ in range(ANNOTATIONS_PER_IMAGE):
            points, area, bbox = _polygon(rng)
            annotations.append({"segmentation": [points], "area": area, "iscrowd": 0, "image_id": number,
                                "bbox": bbox, "category_id": categories[int(rng.integers(len(categories)))]["id"],
                                "id": len(annotations) + 1})
    licences = [{"url": f"http://creativecommons.org/licenses/{n}/2.0/", "id": n, "name": f"licence {n}"}
                for n in range(1, 9)]
    folders = {}
    for size in subsets:
        folder = root / f"coco-{size}"
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        (folder / "images").mkdir(exist_ok=True)
        for image, array in zip(images[:size], pixels[:size]):
            if not (folder / "images" / image["file_name"]).is_file():  # kept from an earlier run with --work
                (folder / "images" / image["file_name"]).write_bytes(encode_png(array))
        subset = {"info": {"description": "COCO-format stand-in", "version": "1.0", "year": 2017},
                  "licenses": licences, "images": images[:size],
                  "annotations": annotations[:size * ANNOTATIONS_PER_IMAGE], "categories": categories}
        (folder / "annotations" / "instances_train.json").write_text(json.dumps(subset), encoding="utf-8")
        folders[size] = folder
    return folders


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: on Linux that keeps the
    high-water mark of the process image before exec, here the parent's, which holds the stand-in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(folder: str, draw: int, eager: bool, resolution: int) -> None:
    """In a fresh process: open the source, draw ``draw`` examples, print the figures as one JSON line. The
    trainer's modules (torch, accelerate, the loop) are imported first, as in ``fsmi train``."""
    import flexedit_model.training.loop  # noqa: F401 (the process a training run is)
    from flexedit_model.training.sources import Recipe, open_examples

    baseline = peak_rss_mb()
    started = time.perf_counter()
    if eager:
        from flexedit_model.training.data import load_training_content

        content = load_training_content(f"coco:{folder}", "train")
        examples, objects = Recipe(resolution, 0, 0.5, 0.5, None).examples_of(content), len(content.objects)
    else:
        examples = open_examples(f"coco:{folder}", Recipe(resolution, 0, 0.5, 0.5, None))
        objects = examples.stream.object_count
    startup = time.perf_counter() - started
    drawn = time.perf_counter()
    for index in range(draw):
        examples[index]
    per_example = (time.perf_counter() - drawn) / max(draw, 1)
    print(json.dumps({"startup_s": startup, "peak_rss_mb": peak_rss_mb(), "after_imports_mb": baseline,
                      "objects": objects, "example_ms": per_example * 1000}))


def measure(folder: Path, draw: int, eager: bool, resolution: int) -> dict:
    command = [sys.executable, __file__, "--child", str(folder), "--draw", str(draw), "--resolution", str(resolution)]
    result = subprocess.run(command + (["--eager"] if eager else []), capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"measuring {folder} failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 20_000], help="folder sizes to measure")
    parser.add_argument("--draw", type=int, default=200, help="examples drawn after opening (default 200)")
    parser.add_argument("--resolution", type=int, default=64,
                        help="training resolution of the drawn examples (default 64, the photos' size)")
    parser.add_argument("--work", type=Path, default=None, help="where to build the stand-in (default: a temp folder)")
    parser.add_argument("--eager", action="store_true", help="also measure the whole-folder reader")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.draw, args.eager, args.resolution)
        return
    sizes = sorted(set(args.images))
    with tempfile.TemporaryDirectory() as temporary:
        root = args.work or Path(temporary)
        started = time.perf_counter()
        folders = build_stand_in(root, sizes)
        print(f"stand-in: {max(sizes)} photos of {WIDTH}x{HEIGHT}, {ANNOTATIONS_PER_IMAGE} polygons each, built in "
              f"{time.perf_counter() - started:.1f} s under {root}")
        readers = [("streamed", False)] + ([("eager", True)] if args.eager else [])
        for reader, eager in readers:
            peaks = {}
            for size in sizes:
                figures = measure(folders[size], args.draw, eager, args.resolution)
                peaks[size] = figures["peak_rss_mb"]
                json_mb = (folders[size] / "annotations" / "instances_train.json").stat().st_size / 2**20
                print(f"{reader:8s} {size:>7,d} images ({json_mb:6.1f} MB JSON, {figures['objects']:>7,d} train "
                      f"objects): start-up {figures['startup_s']:6.2f} s, peak RSS {figures['peak_rss_mb']:7.1f} MB "
                      f"(index and examples {figures['peak_rss_mb'] - figures['after_imports_mb']:.1f} MB), {figures['example_ms']:.1f} ms per "
                      f"example at {args.resolution} px")
            ratio = peaks[sizes[-1]] / peaks[sizes[0]]
            verdict = "within" if ratio < 1.5 else "ABOVE"
            print(f"{reader}: peak RSS {sizes[-1]:,} / {sizes[0]:,} images = {ratio:.2f}x ({verdict} the 1.5x target)")


if __name__ == "__main__":
    main()
