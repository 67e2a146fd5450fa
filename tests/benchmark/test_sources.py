"""The COCO, `datasets` and FSMI-folder sources, on tiny folders written by the tests themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fsmi_bench.benchmark.sources import load_source
from fsmi_bench.benchmark.sources.coco import load_coco
from fsmi_bench.benchmark.sources.fsmi_folder import load_fsmi_folder, region_from_difference
from fsmi_bench.benchmark.sources.hf_disk import load_hf_disk
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import save_png

WIDTH, HEIGHT = 40, 30


def _image(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _box(x0, y0, x1, y1, width=WIDTH, height=HEIGHT) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ---------------------------------------------------------------- COCO


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major flattened mask, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


@pytest.fixture
def coco_dir(tmp_path):
    from pycocotools import mask as mask_utils

    root = tmp_path / "coco"
    for number in (1, 2, 3):
        save_png(root / "images" / f"photo{number}.png", _image(number))
    dog_mask = _box(5, 5, 25, 20)
    compressed = mask_utils.encode(np.asfortranarray(_box(20, 10, 35, 28).astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    annotations = [
        # image 1: a bottle (polygon, kitchen) and a chair (compressed RLE, furniture) and a person
        {"id": 11, "image_id": 1, "category_id": 44, "iscrowd": 0,
         "segmentation": [[2, 2, 12, 2, 12, 22, 2, 22]]},
        {"id": 12, "image_id": 1, "category_id": 62, "iscrowd": 0, "segmentation": compressed},
        {"id": 13, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[30, 0, 39, 0, 39, 9, 30, 9]]},
        # image 2: a dog (uncompressed RLE, animal), a person, a crowd and an object under 1 % of the image
        {"id": 21, "image_id": 2, "category_id": 18, "iscrowd": 0, "segmentation": _uncompressed_rle(dog_mask)},
        {"id": 22, "image_id": 2, "category_id": 1, "iscrowd": 0, "segmentation": [[28, 5, 38, 5, 38, 25, 28, 25]]},
        {"id": 23, "image_id": 2, "category_id": 1, "iscrowd": 1, "segmentation": _uncompressed_rle(dog_mask)},
        {"id": 24, "image_id": 2, "category_id": 44, "iscrowd": 0, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
        # image 3: only a person, so no vote: outdoor by default
        {"id": 31, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": [[5, 5, 20, 5, 20, 25, 5, 25]]},
    ]
    dataset = {
        "licenses": [{"id": 4, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}],
        "images": [{"id": number, "file_name": f"photo{number}.png", "width": WIDTH, "height": HEIGHT, "license": 4}
                   for number in (3, 1, 2)],  # out of order on purpose: loading sorts by id
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 18, "name": "dog", "supercategory": "animal"},
                       {"id": 44, "name": "bottle", "supercategory": "kitchen"},
                       {"id": 62, "name": "chair", "supercategory": "furniture"}],
        "annotations": annotations,
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_mini.json").write_text(json.dumps(dataset))
    return root


def test_coco_scenes_objects_masks_and_scenarios(coco_dir):
    content = load_coco(str(coco_dir))
    assert [scene.photo_id for scene in content.scenes] == ["1", "2", "3"]
    assert {scene.photo_id: scene.scenario for scene in content.scenes} == {
        "1": "indoor", "2": "outdoor", "3": "outdoor"}
    np.testing.assert_array_equal(content.scenes[0].image, _image(1))
    assert [(obj.object_id, obj.label) for obj in content.objects] == [
        ("1/11", "bottle"), ("1/12", "chair"), ("1/13", "person"), ("2/21", "dog"), ("2/22", "person"),
        ("3/31", "person")]
    by_id = {obj.object_id: obj for obj in content.objects}
    np.testing.assert_array_equal(by_id["2/21"].mask, _box(5, 5, 25, 20))
    np.testing.assert_array_equal(by_id["1/12"].mask, _box(20, 10, 35, 28))
    assert by_id["1/11"].mask.dtype == bool and by_id["1/11"].bbox()[:2] == (2, 2)
    assert by_id["2/21"].photo_id == "2" and by_id["2/21"].image is content.scenes[1].image
    assert "CC BY 4.0" in by_id["2/21"].origin and "photo2.png" in by_id["2/21"].origin
    assert "CC BY 4.0" in content.card and "6 objects" in content.card


def test_coco_area_threshold_is_a_parameter_and_registry_finds_loader(coco_dir):
    keep_all = load_coco(str(coco_dir), min_area_fraction=0.0)
    assert "2/24" in {obj.object_id for obj in keep_all.objects}
    assert "2/23" not in {obj.object_id for obj in keep_all.objects}  # crowd regions are never objects
    via_registry = load_source(f"coco:{coco_dir}")
    assert [obj.object_id for obj in via_registry.objects] == [obj.object_id for obj in load_coco(str(coco_dir)).objects]


def test_coco_flat_layout_and_scenario_override(tmp_path):
    save_png(tmp_path / "street.png", _image(7))
    (tmp_path / "labels.json").write_text(json.dumps({
        "images": [{"id": 5, "file_name": "street.png", "width": WIDTH, "height": HEIGHT, "scenario": "indoor"}],
        "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "iscrowd": 0,
                         "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]}]}))
    content = load_coco(str(tmp_path))
    assert content.scenes[0].scenario == "indoor"
    assert content.objects[0].label == "car" and content.objects[0].mask.sum() > 0.1 * WIDTH * HEIGHT


def _edit_json(coco_dir, change):
    path = coco_dir / "annotations" / "instances_mini.json"
    dataset = json.loads(path.read_text())
    change(dataset)
    path.write_text(json.dumps(dataset))


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "images" / "photo2.png").unlink(), "photo2.png not found"),
    (lambda root: (root / "images" / "photo2.png").write_bytes(b"not a png"), "cannot read image"),
    (lambda root: save_png(root / "images" / "photo2.png", _image(2, width=41)), "41x30 but the JSON says 40x30"),
    (lambda root: (root / "annotations" / "instances_mini.json").write_text("{oops"), "not valid JSON"),
    (lambda root: _edit_json(root, lambda data: data.pop("categories")), "lacks categories"),
    (lambda root: _edit_json(root, lambda data: data["annotations"][0].update(category_id=99)),
     "unknown category_id 99"),
    (lambda root: _edit_json(root, lambda data: data["images"][0].update(file_name="../../etc/passwd")),
     "outside the COCO folder"),
    (lambda root: (root / "annotations" / "instances_mini.json").unlink(), "has no COCO annotations"),
])
def test_coco_errors_name_the_file(coco_dir, damage, message):
    damage(coco_dir)
    with pytest.raises(BadInputError, match=message):
        load_coco(str(coco_dir))


def test_coco_missing_folder():
    with pytest.raises(BadInputError, match="COCO folder not found"):
        load_coco("/nonexistent/coco")


# ---------------------------------------------------------------- datasets folders


def _segmentation_dataset(path, rows: dict):
    import datasets
    from PIL import Image

    features = {"image": datasets.Image(), "mask": datasets.Image(), "label": datasets.Value("string")}
    features.update({key: datasets.Value("string") for key in rows if key not in features})
    columns = dict(rows)
    columns["image"] = [Image.fromarray(image) for image in rows["image"]]
    columns["mask"] = [Image.fromarray(mask.astype(np.uint8) * 255) for mask in rows["mask"]]
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).save_to_disk(str(path))


def test_hf_segmentation_rows(tmp_path):
    photo_a, photo_b = _image(1), _image(2)
    masks = [_box(0, 0, 10, 10), _box(20, 5, 30, 25), _box(5, 5, 15, 15)]
    _segmentation_dataset(tmp_path / "objects", {
        "image": [photo_a, photo_a, photo_b], "mask": masks, "label": ["cup", "lamp", "dog"],
        "photo_id": ["kitchen", "kitchen", "park"], "scenario": ["indoor", "indoor", None],
        "origin": ["own photo, CC0", "own photo, CC0", None]})
    content = load_hf_disk(str(tmp_path / "objects"))
    assert [(scene.photo_id, scene.scenario) for scene in content.scenes] == [("kitchen", "indoor"), ("park", "outdoor")]
    np.testing.assert_array_equal(content.scenes[1].image, photo_b)
    assert [(obj.object_id, obj.photo_id, obj.label) for obj in content.objects] == [
        ("000000", "kitchen", "cup"), ("000001", "kitchen", "lamp"), ("000002", "park", "dog")]
    for obj, mask in zip(content.objects, masks):
        np.testing.assert_array_equal(obj.mask, mask)
    assert content.objects[1].image is content.scenes[0].image
    assert content.objects[0].origin == "own photo, CC0" and "row 2" in content.objects[2].origin
    assert load_source(f"hf:{tmp_path / 'objects'}").objects[2].label == "dog"


def test_hf_minimal_columns_give_one_photo_per_row(tmp_path):
    _segmentation_dataset(tmp_path / "objects", {"image": [_image(1), _image(2)],
                                                 "mask": [_box(0, 0, 5, 5), _box(1, 1, 6, 6)], "label": ["a", "b"]})
    content = load_hf_disk(str(tmp_path / "objects"))
    assert [scene.photo_id for scene in content.scenes] == ["row-000000", "row-000001"]
    assert all(scene.scenario == "outdoor" for scene in content.scenes)


@pytest.mark.parametrize("rows, message", [
    ({"image": [_image(1)], "mask": [_box(0, 0, 5, 5, width=20)], "label": ["a"]}, "mask is 20x30 but image is 40x30"),
    ({"image": [_image(1)], "mask": [np.zeros((HEIGHT, WIDTH), bool)], "label": ["a"]}, "mask is empty"),
    ({"image": [_image(1)], "mask": [_box(0, 0, 5, 5)], "label": [""]}, "label must be a non-empty"),
    ({"image": [_image(1)], "mask": [_box(0, 0, 5, 5)], "label": ["a"], "scenario": ["space"]}, "scenario 'space'"),
])
def test_hf_segmentation_errors(tmp_path, rows, message):
    _segmentation_dataset(tmp_path / "objects", rows)
    with pytest.raises(BadInputError, match=message):
        load_hf_disk(str(tmp_path / "objects"))


def test_hf_unknown_schema_and_non_dataset_folder(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["hello"]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(BadInputError, match="unknown schema .*text"):
        load_hf_disk(str(tmp_path / "text"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInputError, match="not a folder written by datasets"):
        load_hf_disk(str(tmp_path / "plain"))
    with pytest.raises(BadInputError, match="not found"):
        load_hf_disk(str(tmp_path / "absent"))


# ---------------------------------------------------------------- FSMI folders


@pytest.fixture
def fsmi_dir(tmp_path):
    """Two cases: a multi-image one listed in cases.jsonl and a single-image one in its own folder."""
    root = tmp_path / "fsmi"
    scene, subject = _image(1), _image(2, width=16, height=12)
    gt = scene.copy()
    gt[10:20, 10:25] = 0
    save_png(root / "photos" / "scene.png", scene)
    save_png(root / "photos" / "gt.png", gt)
    save_png(root / "photos" / "subject.png", subject)
    save_png(root / "photos" / "region.png", _box(8, 8, 27, 22))
    save_png(root / "photos" / "circle.png", _box(5, 5, 20, 20))
    multi = {"case_id": "cat_sofa", "kind": "multi", "op": "add", "scenario": "indoor", "complexity": "simple",
             "instruction": "add the cat from the second image", "label": "cat", "clip_text": "a cat",
             "scene": "photos/scene.png", "subject": "photos/subject.png", "gt": "photos/gt.png",
             "region": "photos/region.png", "masks": {"circle": "photos/circle.png"}, "origin": "own photos, CC0"}
    (root / "cases.jsonl").write_text(json.dumps(multi) + "\n")
    save_png(root / "lamp" / "scene.png", gt)
    save_png(root / "lamp" / "gt.png", scene)
    save_png(root / "lamp" / "masks" / "irregular_open.png", _box(0, 0, 30, 30))
    single = {"case_id": "lamp_remove", "kind": "single", "op": "remove", "scenario": "outdoor",
              "instruction": "remove the black box", "label": "box", "scene": "scene.png", "gt": "gt.png"}
    (root / "lamp" / "case.json").write_text(json.dumps(single))
    return root


def test_fsmi_folder_loads_both_layouts(fsmi_dir):
    from fsmi_bench.io import load_rgb

    content = load_fsmi_folder(str(fsmi_dir))
    assert [case.case_id for case in content.cases] == ["cat_sofa", "lamp_remove"]
    multi, single = content.cases
    assert (multi.kind, multi.complexity, multi.clip_text, multi.origin) == ("multi", "simple", "a cat", "own photos, CC0")
    np.testing.assert_array_equal(multi.subject, load_rgb(fsmi_dir / "photos" / "subject.png"))
    np.testing.assert_array_equal(multi.region, _box(8, 8, 27, 22))
    assert set(multi.masks) == {"circle"} and multi.masks["circle"].sum() == 15 * 15
    assert (single.complexity, single.clip_text, single.subject) == ("none", "box", None)
    assert set(single.masks) == {"irregular_open"}
    # no region given: the difference between scene and GT, dilated by 3 px with a disk
    expected = _box(7, 7, 28, 23)
    assert single.region[10:20, 10:25].all() and not single.region[:6].any()
    assert single.region.sum() == region_from_difference(single.scene, single.gt, 3).sum()
    assert (single.region & ~expected).sum() == 0 and not single.region[7, 7]  # the disk rounds the corners
    assert load_source(f"fsmi:{fsmi_dir}").cases[1].case_id == "lamp_remove"


def _rewrite_multi(root, **changes):
    case = json.loads((root / "cases.jsonl").read_text())
    case.update(changes)
    case = {key: value for key, value in case.items() if value is not None}
    (root / "cases.jsonl").write_text(json.dumps(case) + "\n")


@pytest.mark.parametrize("changes, message", [
    ({"scene": "photos/absent.png"}, "'cat_sofa': scene: image not found: .*absent.png"),
    ({"gt": "photos/broken.png"}, "'cat_sofa': gt: cannot read image .*broken.png"),
    ({"region": "photos/small.png"}, "'cat_sofa': region photos/small.png is 20x10 but scene is 40x30"),
    ({"masks": {"circle": "photos/small.png"}}, "'cat_sofa': mask photos/small.png is 20x10"),
    ({"region": "photos/black.png"}, "'cat_sofa': region photos/black.png is empty"),
    ({"masks": {"circle": "photos/black.png"}}, "mask photos/black.png is empty"),
    ({"gt": "photos/small_rgb.png"}, "'cat_sofa': gt photos/small_rgb.png is 20x10 but scene is 40x30"),
    ({"masks": {"cirle": "photos/circle.png"}}, "unknown mask type 'cirle'; did you mean 'circle'"),
    ({"op": "insert"}, "unknown op 'insert'"),
    ({"kind": "triple"}, "unknown kind 'triple'"),
    ({"scenario": "space"}, "unknown scenario 'space'"),
    ({"complexity": "none"}, "unknown complexity of a multi-image case 'none'"),
    ({"complexity": None}, "needs complexity"),
    ({"subject": None}, "'cat_sofa': a multi-image case needs a subject"),
    ({"kind": "single", "complexity": None}, "single-image case takes no subject"),
    ({"scene": "../outside.png"}, "scene path '../outside.png' points outside the FSMI folder"),
    ({"gt": "/etc/hosts"}, "gt path '/etc/hosts' must be relative"),
    ({"instuction": "typo"}, "unknown key 'instuction'; did you mean 'instruction'"),
    ({"label": ""}, "label must be a non-empty string"),
    ({"case_id": "a/b"}, "case_id 'a/b' must be"),
    ({"region": None, "gt": "photos/scene.png"}, "identical, so the edit region is empty"),
])
def test_fsmi_folder_errors_name_case_and_file(fsmi_dir, changes, message):
    save_png(fsmi_dir / "photos" / "small.png", _box(0, 0, 5, 5, width=20, height=10))
    save_png(fsmi_dir / "photos" / "small_rgb.png", _image(3, width=20, height=10))
    save_png(fsmi_dir / "photos" / "black.png", np.zeros((HEIGHT, WIDTH), bool))
    (fsmi_dir / "photos" / "broken.png").write_bytes(b"\x89PNG truncated")
    save_png(fsmi_dir.parent / "outside.png", _image(4))
    _rewrite_multi(fsmi_dir, **changes)
    with pytest.raises(BadInputError, match=message):
        load_fsmi_folder(str(fsmi_dir))


def test_fsmi_folder_discovered_mask_of_unknown_type(fsmi_dir):
    save_png(fsmi_dir / "lamp" / "masks" / "star.png", _box(0, 0, 5, 5))
    with pytest.raises(BadInputError, match="case.json: case 'lamp_remove': unknown mask type 'star'"):
        load_fsmi_folder(str(fsmi_dir))


def test_fsmi_folder_duplicate_ids_bad_json_and_empty(fsmi_dir, tmp_path):
    single = json.loads((fsmi_dir / "lamp" / "case.json").read_text())
    single["case_id"] = "cat_sofa"
    (fsmi_dir / "lamp" / "case.json").write_text(json.dumps(single))
    with pytest.raises(BadInputError, match="'cat_sofa' appears twice"):
        load_fsmi_folder(str(fsmi_dir))
    (fsmi_dir / "cases.jsonl").write_text("{not json\n")
    with pytest.raises(BadInputError, match=r"cases.jsonl:1: not valid JSON"):
        load_fsmi_folder(str(fsmi_dir))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="holds no cases"):
        load_fsmi_folder(str(tmp_path / "empty"))


def test_build_composites_cases_from_a_coco_folder(coco_dir, tmp_path):
    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    from fsmi_bench.benchmark.manifest import load_benchmark

    bench = build_benchmark(BuildConfig(out=tmp_path / "bench", source=f"coco:{coco_dir}", single=3, multi=2,
                                        size=64, previews=False), progress=False)
    rows = load_benchmark(bench).rows
    assert len(rows) == 5 * 9
    labels = {"bottle", "chair", "person", "dog"}
    for row in rows:
        assert row.label in labels or row.op == "remove"
        assert row.origins["scene"].split(":", 1)[0] == "coco"


def test_coco_huge_polygon_coordinates_are_clipped_to_the_image(coco_dir):
    """A coordinate of 1e8 took gigabytes in pycocotools; clipped first, it costs nothing, and the pixels
    inside the image are those of the unclipped polygon."""
    before = {obj.object_id: obj.mask for obj in load_coco(str(coco_dir), min_area_fraction=0.0).objects}
    _edit_json(coco_dir, lambda data: data["annotations"][7].update(
        segmentation=[[5, 5, 1e8, 5, 1e8, 25, 5, 25]]))  # person 31 of image 3, stretched far to the right
    _edit_json(coco_dir, lambda data: data["annotations"][2].update(
        segmentation=[[30, -50, 39 + 60, 0, 39, 9, 30, 9]]))  # person 13, partly outside
    after = {obj.object_id: obj.mask for obj in load_coco(str(coco_dir), min_area_fraction=0.0).objects}
    from pycocotools import mask as mask_utils

    def unclipped(polygon):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], HEIGHT, WIDTH))).astype(bool)

    assert np.array_equal(after["3/31"], unclipped([5, 5, WIDTH + 50, 5, WIDTH + 50, 25, 5, 25]))
    assert np.array_equal(after["1/13"], unclipped([30, -50, 99, 0, 39, 9, 30, 9]))
    assert np.array_equal(after["1/11"], before["1/11"])


@pytest.mark.parametrize("change, message", [
    (lambda data: data["categories"][0].pop("name"), "has no name"),
    (lambda data: data["annotations"][1]["segmentation"].update(size=[100000, 100000]), "RLE of size"),
    (lambda data: data["annotations"][0].update(segmentation=[[1, 2, "x", 4, 5, 6]]), "finite numbers"),
    (lambda data: data["annotations"][0].update(segmentation="abc"), "no polygon or RLE"),
])
def test_coco_hostile_annotations_are_one_error(coco_dir, change, message):
    _edit_json(coco_dir, change)
    with pytest.raises(BadInputError, match=message):
        load_coco(str(coco_dir))


# ---------------------------------------------------------------- FSMI folders: subject masks


def test_fsmi_folder_reads_the_subject_mask(fsmi_dir):
    subject_mask = _box(2, 3, 12, 10, width=16, height=12)
    save_png(fsmi_dir / "photos" / "subject_mask.png", subject_mask)
    _rewrite_multi(fsmi_dir, subject_mask="photos/subject_mask.png")
    multi, single = load_fsmi_folder(str(fsmi_dir)).cases
    np.testing.assert_array_equal(multi.subject_mask, subject_mask)
    assert single.subject_mask is None


@pytest.mark.parametrize("changes, message", [
    ({"subject_mask": "photos/absent.png"}, "'cat_sofa': subject_mask: image not found: .*absent.png"),
    ({"subject_mask": "photos/region.png"}, "'cat_sofa': subject_mask photos/region.png is 40x30 but subject is 16x12"),
    ({"subject_mask": "photos/black_subject.png"}, "'cat_sofa': subject_mask photos/black_subject.png is empty"),
    ({"subject_mask": "../outside.png"}, "subject_mask path '../outside.png' points outside the FSMI folder"),
    ({"subject_mask": "photos/black_subject.png", "kind": "single", "complexity": None, "subject": None},
     "a single-image case takes no subject_mask"),
])
def test_fsmi_folder_subject_mask_errors_name_case_and_file(fsmi_dir, changes, message):
    save_png(fsmi_dir / "photos" / "black_subject.png", np.zeros((12, 16), bool))
    save_png(fsmi_dir.parent / "outside.png", _box(0, 0, 5, 5, width=16, height=12))
    _rewrite_multi(fsmi_dir, **changes)
    with pytest.raises(BadInputError, match=message):
        load_fsmi_folder(str(fsmi_dir))


def test_fsmi_folder_subject_mask_is_hashed_into_the_manifest(fsmi_dir, tmp_path):
    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.io import load_mask, sha256_file

    subject_mask = _box(2, 3, 12, 10, width=16, height=12)
    save_png(fsmi_dir / "photos" / "subject_mask.png", subject_mask)
    _rewrite_multi(fsmi_dir, subject_mask="photos/subject_mask.png")
    bench = build_benchmark(BuildConfig(out=tmp_path / "bench", source=f"fsmi:{fsmi_dir}", previews=False,
                                        workers=1), progress=False)
    rows = {row.case_id: row for row in load_benchmark(bench, verify=True).rows}
    multi, single = rows["cat_sofa"], rows["lamp_remove"]
    assert multi.subject_mask == "cases/cat_sofa/subject_mask.png"
    assert multi.subject_mask_sha256 == sha256_file(bench / multi.subject_mask)
    np.testing.assert_array_equal(load_mask(bench / multi.subject_mask), subject_mask)
    assert single.subject_mask is None and single.subject_mask_sha256 is None
