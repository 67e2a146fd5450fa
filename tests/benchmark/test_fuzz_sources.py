"""`fsmi build` over damaged sources (hypothesis): random damage to an `fsmi:` folder, a COCO folder and a
`datasets` folder saved with save_to_disk. Every build either succeeds or prints one line and exits 2; never
a traceback; nothing is written outside the output folder (the source is left as it was)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmi_bench.cli import main
from fsmi_bench.io import save_png

WIDTH, HEIGHT = 48, 36
HOSTILE = st.one_of(
    st.sampled_from(["../../outside.png", "/etc/passwd", "..", ".", "", "a\nb", "case\n", "x" * 300, "\x00",
                     "photos/../../../x.png", "multi", "single", "full", "circle", "indoor", "add", "simple",
                     "photos/scene.png", "photos/broken.png", "photos/gray16.png"]),
    st.integers(min_value=-2**63, max_value=2**63), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.none(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=12))
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _image(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _box(x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and "bench" not in path.relative_to(folder).parts}


def _build_and_check(work: Path, source: str) -> None:
    """Build from ``source`` into work/bench: exit 0, or one line and exit 2; nothing else in ``work`` changes."""
    before = _snapshot(work)
    result = CliRunner().invoke(main, ["build", "--source", source, "--out", str(work / "bench"), "--single", "1",
                                       "--multi", "1", "--size", "64", "--no-previews"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        lines = result.output.rstrip("\n").split("\n")  # a progress bar (redrawn with \r) may come first
        assert "Traceback" not in result.output and all("\r" in line for line in lines[:-1]), result.output
        assert lines[-1].startswith("Error: "), result.output
        assert not (work / "bench").exists()
    assert _snapshot(work) == before, "the build wrote or changed files outside its output folder"
    assert sorted(path.name for path in work.iterdir()) in (["bench", "src"], ["src"]), sorted(work.iterdir())


def _common_damage(data, root: Path) -> None:
    """Damage that fits any source folder: a truncated or junk image, a symlink out, junk bytes in a file."""
    files = sorted(path for path in root.rglob("*") if path.is_file())
    target = data.draw(st.sampled_from(files), label="file")
    action = data.draw(st.sampled_from(["truncate", "junk", "symlink_out", "empty"]), label="file damage")
    if action == "truncate":
        content = target.read_bytes()
        target.write_bytes(content[:data.draw(st.integers(0, max(0, len(content) - 1)), label="keep")])
    elif action == "junk":
        target.write_bytes(data.draw(st.binary(max_size=64), label="bytes"))
    elif action == "symlink_out":
        target.unlink()
        target.symlink_to(root.parent.parent / "outside.png")
    else:
        target.write_bytes(b"")


# ---------------------------------------------------------------- fsmi: folders


@pytest.fixture(scope="module")
def fsmi_pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fsmi") / "src"
    scene, subject = _image(1), _image(2, 20, 16)
    gt = scene.copy()
    gt[10:24, 12:30] = 0
    save_png(root / "photos" / "scene.png", scene)
    save_png(root / "photos" / "gt.png", gt)
    save_png(root / "photos" / "subject.png", subject)
    save_png(root / "photos" / "region.png", _box(10, 8, 32, 26))
    save_png(root / "photos" / "circle.png", _box(6, 6, 26, 26))
    multi = {"case_id": "cat_sofa", "kind": "multi", "op": "add", "scenario": "indoor", "complexity": "simple",
             "instruction": "add the cat", "label": "cat", "scene": "photos/scene.png", "subject": "photos/subject.png",
             "gt": "photos/gt.png", "region": "photos/region.png", "masks": {"circle": "photos/circle.png"}}
    single = {"case_id": "box_remove", "kind": "single", "op": "remove", "scenario": "outdoor",
              "instruction": "remove the box", "label": "box", "scene": "photos/gt.png", "gt": "photos/scene.png",
              "region_dilation_px": 2}
    (root / "cases.jsonl").write_text(json.dumps(multi) + "\n" + json.dumps(single) + "\n")
    return root


CASE_KEYS = ("case_id", "kind", "op", "scenario", "complexity", "instruction", "label", "clip_text", "scene", "gt",
             "subject", "region", "masks", "region_dilation_px", "origin", "unknown_key")


@FUZZ
@given(data=st.data())
def test_damaged_fsmi_folders_build_or_are_one_line(fsmi_pristine, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz-fsmi")
    root = work / "src"
    shutil.copytree(fsmi_pristine, root)
    save_png(work.parent / "outside.png", _image(9))
    rows = [json.loads(line) for line in (root / "cases.jsonl").read_text().splitlines()]
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        kind = data.draw(st.sampled_from(["set", "drop", "duplicate", "junk_line", "file"]), label="damage")
        index = data.draw(st.integers(0, len(rows) - 1), label="row")
        if kind in ("set", "drop") and not isinstance(rows[index], dict):
            continue  # a junk line added before
        if kind == "set":
            rows[index] = {**rows[index], data.draw(st.sampled_from(CASE_KEYS), label="key"): data.draw(HOSTILE)}
        elif kind == "drop":
            key = data.draw(st.sampled_from(CASE_KEYS), label="dropped")
            rows[index] = {name: value for name, value in rows[index].items() if name != key}
        elif kind == "duplicate":
            rows.append(rows[index])
        elif kind == "junk_line":
            rows.append(data.draw(st.sampled_from([[1], "row", 3, None, {}, {"case_id": "x"}]), label="junk"))
        else:
            _common_damage(data, root)
    if (root / "cases.jsonl").is_file() and not (root / "cases.jsonl").is_symlink():
        (root / "cases.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    _build_and_check(work, f"fsmi:{root}")


# ---------------------------------------------------------------- COCO folders


@pytest.fixture(scope="module")
def coco_pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco") / "src"
    for number in (1, 2, 3):
        save_png(root / "images" / f"photo{number}.png", _image(number))
    annotations = [
        {"id": 11, "image_id": 1, "category_id": 44, "iscrowd": 0, "segmentation": [[2, 2, 20, 2, 20, 30, 2, 30]]},
        {"id": 12, "image_id": 2, "category_id": 62, "iscrowd": 0, "segmentation": [[20, 10, 44, 10, 44, 34, 20, 34]]},
        {"id": 13, "image_id": 3, "category_id": 18, "iscrowd": 0, "segmentation": [[5, 5, 30, 5, 30, 30, 5, 30]]},
        {"id": 14, "image_id": 3, "category_id": 44, "iscrowd": 0, "segmentation": [[32, 4, 46, 4, 46, 20, 32, 20]]},
    ]
    dataset = {"images": [{"id": number, "file_name": f"photo{number}.png", "width": WIDTH, "height": HEIGHT}
                          for number in (1, 2, 3)],
               "categories": [{"id": 18, "name": "dog", "supercategory": "animal"},
                              {"id": 44, "name": "bottle", "supercategory": "kitchen"},
                              {"id": 62, "name": "chair", "supercategory": "furniture"}],
               "annotations": annotations}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_mini.json").write_text(json.dumps(dataset))
    return root


@FUZZ
@given(data=st.data())
def test_damaged_coco_folders_build_or_are_one_line(coco_pristine, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz-coco")
    root = work / "src"
    shutil.copytree(coco_pristine, root)
    save_png(work.parent / "outside.png", _image(9))
    annotation_file = root / "annotations" / "instances_mini.json"
    dataset = json.loads(annotation_file.read_text())
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        section = data.draw(st.sampled_from(["images", "annotations", "categories", "top", "file"]), label="section")
        if section == "top":
            dataset[data.draw(st.sampled_from(["images", "annotations", "categories", "licenses"]))] = data.draw(HOSTILE)
        elif section == "file":
            _common_damage(data, root)
        elif isinstance(dataset.get(section), list) and dataset[section]:
            entries = dataset[section]
            index = data.draw(st.integers(0, len(entries) - 1), label="entry")
            keys = sorted(entries[index]) if isinstance(entries[index], dict) else []
            if keys and data.draw(st.booleans(), label="set or drop"):
                entries[index] = {**entries[index], data.draw(st.sampled_from(keys + ["scenario", "license"])):
                                  data.draw(HOSTILE)}
            elif keys:
                key = data.draw(st.sampled_from(keys))
                entries[index] = {name: value for name, value in entries[index].items() if name != key}
            else:
                entries[index] = data.draw(HOSTILE)
    if annotation_file.is_file() and not annotation_file.is_symlink():
        annotation_file.write_text(json.dumps(dataset))
    _build_and_check(work, f"coco:{root}")


# ---------------------------------------------------------------- datasets folders


def _save_dataset(path: Path, rows: dict) -> None:
    import datasets
    from PIL import Image

    features = {"image": datasets.Image(), "mask": datasets.Image(), "label": datasets.Value("string"),
                "scenario": datasets.Value("string"), "photo_id": datasets.Value("string")}
    columns = {name: list(values) for name, values in rows.items()}
    for name in ("image", "mask"):
        columns[name] = [value if value is None or isinstance(value, Image.Image) else Image.fromarray(value)
                         for value in columns[name]]
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).save_to_disk(str(path))


def _segmentation_rows() -> dict:
    masks = [_box(2, 2, 20, 30), _box(20, 10, 44, 34), _box(5, 5, 30, 30)]
    return {"image": [_image(1), _image(2), _image(3)], "mask": [mask.astype(np.uint8) * 255 for mask in masks],
            "label": ["bottle", "chair", "dog"], "scenario": ["indoor", "indoor", "outdoor"],
            "photo_id": ["a", "b", "c"]}


@pytest.fixture(scope="module")
def hf_pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf") / "src"
    _save_dataset(root, _segmentation_rows())
    return root


def _hostile_cell(data):
    """A value for an image column: another mode or size, an empty or huge-declared image, or None."""
    from PIL import Image

    choice = data.draw(st.sampled_from(["mode", "size", "none", "tiny"]), label="cell")
    if choice == "mode":
        return Image.fromarray(_image(5)).convert(data.draw(st.sampled_from(["L", "1", "P", "CMYK", "LA", "I", "F",
                                                                                  "RGBA", "YCbCr"])))
    if choice == "size":
        return Image.fromarray(_image(6, width=data.draw(st.integers(1, 80)), height=data.draw(st.integers(1, 80))))
    if choice == "tiny":
        return Image.fromarray(np.zeros((1, 1), np.uint8))
    return None


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_damaged_datasets_folders_build_or_are_one_line(hf_pristine, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz-hf")
    root = work / "src"
    save_png(work.parent / "outside.png", _image(9))
    if data.draw(st.booleans(), label="damage rows or files"):
        rows = _segmentation_rows()
        for _ in range(data.draw(st.integers(1, 3), label="changes")):
            column = data.draw(st.sampled_from(sorted(rows)), label="column")
            index = data.draw(st.integers(0, 2), label="row")
            if column in ("image", "mask"):
                rows[column][index] = _hostile_cell(data)
            else:
                value = data.draw(st.one_of(st.none(), st.sampled_from(["", "space", "a\nb", "x" * 300, "indoor"]),
                                            st.text(max_size=8)), label="value")
                rows[column][index] = value
        _save_dataset(root, rows)
    else:
        shutil.copytree(hf_pristine, root)
        _common_damage(data, root)
    _build_and_check(work, f"hf:{root}")


@pytest.mark.parametrize("kind", ["fsmi", "coco", "hf"])
def test_the_undamaged_sources_build(kind, fsmi_pristine, coco_pristine, hf_pristine, tmp_path):
    """The fuzz tests start from sources that build, so their refusals come from the damage."""
    work = tmp_path / "work"
    shutil.copytree({"fsmi": fsmi_pristine, "coco": coco_pristine, "hf": hf_pristine}[kind], work / "src")
    result = CliRunner().invoke(main, ["build", "--source", f"{kind}:{work / 'src'}", "--out", str(work / "bench"),
                                       "--single", "1", "--multi", "1", "--size", "64", "--no-previews"])
    assert result.exit_code == 0, result.output
    assert (work / "bench" / "manifest.jsonl").is_file()
