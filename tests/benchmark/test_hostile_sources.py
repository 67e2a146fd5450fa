"""Hostile `fsmi:` and `hf:` sources: fields of the wrong type, unbounded numbers, cells that are not images.

Each is refused by the loader with one ``BadInputError`` naming the case (or the row) and the field (or the
column), and by `fsmi build` with one line and exit 2, before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fsmi_bench.benchmark.sources.fsmi_folder import MAX_REGION_DILATION_PX, load_fsmi_folder
from fsmi_bench.benchmark.sources.hf_disk import load_hf_disk
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import save_png

WIDTH, HEIGHT = 40, 30


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture
def fsmi_dir(tmp_path):
    """One single-image case whose region comes from the scene/GT difference (so the dilation is used)."""
    root = tmp_path / "fsmi"
    scene = _image(1)
    gt = scene.copy()
    gt[10:20, 10:25] = 0
    save_png(root / "scene.png", scene)
    save_png(root / "gt.png", gt)
    case = {"case_id": "box_remove", "kind": "single", "op": "remove", "scenario": "indoor",
            "instruction": "remove the box", "label": "box", "scene": "scene.png", "gt": "gt.png"}
    (root / "cases.jsonl").write_text(json.dumps(case) + "\n")
    return root


def _set(root, **changes):
    case = json.loads((root / "cases.jsonl").read_text())
    case.update(changes)
    (root / "cases.jsonl").write_text(json.dumps(case) + "\n")


@pytest.mark.parametrize("value", [MAX_REGION_DILATION_PX + 1, 10**12, -1, 2.5, "3", True, [3], None, {"px": 3}])
def test_region_dilation_is_a_bounded_whole_number(fsmi_dir, value):
    _set(fsmi_dir, region_dilation_px=value)
    with pytest.raises(BadInputError, match=f"'box_remove': region_dilation_px must be a whole number from 0 to "
                                            f"{MAX_REGION_DILATION_PX}"):
        load_fsmi_folder(str(fsmi_dir))


def test_region_dilation_at_the_bound_is_accepted(fsmi_dir):
    _set(fsmi_dir, region_dilation_px=MAX_REGION_DILATION_PX)
    assert load_fsmi_folder(str(fsmi_dir)).cases[0].region.all()  # 64 px around a 15x10 box covers 40x30


@pytest.mark.parametrize("changes, message", [
    ({"clip_text": ["a", "box"]}, "clip_text must be a string, not list"),
    ({"origin": {"licence": "CC0"}}, "origin must be a string, not dict"),
    ({"instruction": 7}, "instruction must be a non-empty string"),
    ({"kind": ["single"]}, "unknown kind \\['single'\\]"),
    ({"op": {"add": 1}}, "unknown op"),
    ({"case_id": 12}, "case_id 12 must be"),
    ({"case_id": "box\n"}, "case_id 'box\\\\n' must be"),
    ({"scene": 3}, "scene must be a relative file path"),
    ({"masks": ["circle.png"]}, "masks must be an object"),
])
def test_fields_of_the_wrong_type_are_one_error(fsmi_dir, changes, message):
    _set(fsmi_dir, **changes)
    with pytest.raises(BadInputError, match=message):
        load_fsmi_folder(str(fsmi_dir))


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00binary", "is not UTF-8 text"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_unreadable_case_files_are_one_error(fsmi_dir, content, message):
    (fsmi_dir / "cases.jsonl").write_bytes(content)
    with pytest.raises(BadInputError, match=message):
        load_fsmi_folder(str(fsmi_dir))


def test_cli_build_refuses_a_huge_dilation_in_one_line_and_writes_nothing(fsmi_dir, tmp_path):
    _set(fsmi_dir, region_dilation_px=10**9)
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["build", "--source", f"fsmi:{fsmi_dir}", "--out", str(out), "--size", "64",
                                       "--no-previews"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "region_dilation_px" in result.output
    assert not out.exists() and [path.name for path in tmp_path.iterdir()] == ["fsmi"]


# ---------------------------------------------------------------- `hf:` datasets


def _dataset(path, image_feature, image_values, mask_values=None):
    """A segmentation dataset whose ``image`` column has the given feature type and values."""
    import datasets
    from PIL import Image

    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[5:15, 5:15] = 255
    masks = mask_values if mask_values is not None else [Image.fromarray(mask)] * len(image_values)
    features = datasets.Features({"image": image_feature, "mask": datasets.Image(), "label": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": image_values, "mask": masks, "label": ["cup"] * len(image_values)},
                               features=features).save_to_disk(str(path))
    return path


def test_a_string_column_named_image_is_one_error_naming_row_and_column(tmp_path):
    import datasets
    from PIL import Image

    good = Image.fromarray(_image(1))
    path = _dataset(tmp_path / "strings", datasets.Value("string"), ["photos/1.png", "not an image"],
                    [good, good])
    with pytest.raises(BadInputError, match="row 0: column 'image' holds str 'photos/1.png', not an image"):
        load_hf_disk(str(path))


def test_damaged_image_bytes_are_one_error_naming_row_and_column(tmp_path):
    import datasets
    from PIL import Image

    fine = {"bytes": Image.fromarray(_image(1))._repr_png_(), "path": None}
    broken = {"bytes": b"\x89PNG\r\n\x1a\n broken", "path": None}
    path = _dataset(tmp_path / "broken", datasets.Image(), [fine, broken])
    with pytest.raises(BadInputError, match="row 1: column 'image' is not a readable image"):
        load_hf_disk(str(path))


@pytest.mark.parametrize("mode", ["F", "I;16", "I", "CMYK", "LA", "P", "1", "RGBA"])
def test_unusual_image_modes_load_as_rgb(tmp_path, mode):
    import datasets
    from PIL import Image

    base = Image.fromarray(_image(2))
    if mode in ("F", "I;16", "I"):
        grey = np.asarray(base.convert("L"), dtype=np.float32)
        if mode == "F":
            grey[0, 0] = np.nan  # a float image may hold NaN: it reads as black, not as garbage
            image = Image.fromarray(grey, mode="F")
        else:
            image = Image.fromarray(grey.astype(np.uint16 if mode == "I;16" else np.int32))
    else:
        image = base.convert(mode)
    path = _dataset(tmp_path / mode.replace(";", ""), datasets.Image(), [image])
    content = load_hf_disk(str(path))
    assert content.scenes[0].image.shape == (HEIGHT, WIDTH, 3) and content.scenes[0].image.dtype == np.uint8
    if mode == "F":
        assert content.scenes[0].image[0, 0].tolist() == [0, 0, 0]


def test_an_hf_image_above_the_pixel_limit_is_one_error(tmp_path, monkeypatch):
    import datasets
    from PIL import Image

    path = _dataset(tmp_path / "big", datasets.Image(), [Image.fromarray(_image(1))])
    monkeypatch.setenv("FSMI_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(BadInputError, match="row 0: column 'image' is 40x30 = 1200 pixels, above the limit"):
        load_hf_disk(str(path))


def test_cli_build_from_an_hf_dataset_of_strings_is_one_line(tmp_path):
    import datasets

    path = _dataset(tmp_path / "strings", datasets.Value("string"), ["x"], [None])
    result = CliRunner().invoke(main, ["build", "--source", f"hf:{path}", "--out", str(tmp_path / "bench"),
                                       "--size", "64", "--no-previews"])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "column 'image' holds str" in result.output and not (tmp_path / "bench").exists()


# Lone surrogates: JSON's "\ud800" escape parses into text that no file, table or dataset can store.
SURROGATES = ["\ud800", "a \udc80 b", "ends high \ud83d"]


@pytest.mark.parametrize("text", SURROGATES)
@pytest.mark.parametrize("field", ["instruction", "label", "clip_text", "origin"])
def test_a_lone_surrogate_in_a_case_text_is_one_line_before_anything_is_written(fsmi_dir, tmp_path, field, text):
    _set(fsmi_dir, **{field: text})  # json.dumps writes it as a \\udXXX escape, as a hand-edited file may hold
    assert "\\ud" in (fsmi_dir / "cases.jsonl").read_text()
    result = CliRunner().invoke(main, ["build", "--source", f"fsmi:{fsmi_dir}", "--out", str(tmp_path / "bench"),
                                       "--size", "64", "--no-previews"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "unpaired surrogate" in result.output and "cases.jsonl:1" in result.output
    assert not (tmp_path / "bench").exists()


def test_a_surrogate_pair_is_text_and_builds_runs_and_exports(fsmi_dir, tmp_path):
    _set(fsmi_dir, label="box \U0001F4E6")  # an emoji: written as a pair of escapes
    bench = tmp_path / "bench"
    runner = CliRunner()
    assert runner.invoke(main, ["build", "--source", f"fsmi:{fsmi_dir}", "--out", str(bench), "--size", "64",
                                "--no-previews"]).exit_code == 0
    result = runner.invoke(main, ["export", str(bench), "--format", "fsmi", "--out", str(tmp_path / "export"),
                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    (exported,) = [json.loads(line) for line in (tmp_path / "export" / "cases.jsonl").read_text().splitlines()]
    assert exported["label"] == "box \U0001F4E6"


def test_a_manifest_edited_to_hold_a_lone_surrogate_is_one_line_in_export_and_run(fsmi_dir, tmp_path):
    bench = tmp_path / "bench"
    assert CliRunner().invoke(main, ["build", "--source", f"fsmi:{fsmi_dir}", "--out", str(bench), "--size", "64",
                                     "--no-previews"]).exit_code == 0
    manifest = bench / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"remove the box"', '"remove the \\udc80 box"'))
    for arguments in (["export", str(bench), "--out", str(tmp_path / "hf"), "--no-progress"],
                      ["export", str(bench), "--format", "fsmi", "--out", str(tmp_path / "fsmi-export"),
                       "--no-progress"],
                      ["run", "--method", "identity", "--bench", str(bench), "--out", str(tmp_path / "run"),
                       "--no-progress"]):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert "manifest.jsonl:1: text holds an unpaired surrogate" in result.output
    assert not any((tmp_path / name).exists() for name in ("hf", "fsmi-export", "run"))


def test_a_lone_surrogate_in_a_coco_category_is_one_line(tmp_path):
    from tests.support.coco_folder import write_coco_folder

    root = write_coco_folder(tmp_path / "coco")
    annotations = root / "annotations" / "instances_train.json"
    annotations.write_text(annotations.read_text().replace('"name": "dog"', '"name": "d\\udfffog"'))
    result = CliRunner().invoke(main, ["build", "--source", f"coco:{root}", "--out", str(tmp_path / "bench"),
                                       "--size", "64", "--no-previews", "--single", "1", "--multi", "1"])
    assert result.exit_code == 2 and "unpaired surrogate" in result.output, result.output
    assert not (tmp_path / "bench").exists()
