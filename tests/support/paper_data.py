"""Stand-ins of the paper's training data in their published on-disk formats, small and random:

- RefCOCO: ``data_root/refcoco/refs(unc).p`` (a pickled list of refs) and ``instances.json``, images in
  ``data_root/images/mscoco/images/train2014`` (lichengunc/refer, ``refer.py`` lines 48-70, and its
  ``data/README.md`` layout); ref keys as that pickle holds them: ``ref_id, ann_id, image_id, category_id,
  split, sentences [{sent, raw, tokens, sent_id}], sent_ids, file_name`` (``refer.py`` ``createIndex``);
- gRefCOCO: ``data_root/grefcoco/grefs(unc).json`` and ``instances.json``, images in
  ``data_root/images/train2014`` (henghuiding/ReLA, ``gres_model/data/datasets/grefer.py``, ``G_REFER``):
  ``ann_id`` and ``category_id`` are lists, ``[-1]`` for an expression with no target, ``no_target`` flag;
- MagicBrush: a ``DatasetDict`` (``train``, ``dev``) saved with ``save_to_disk``, the features of the
  dataset card (huggingface.co/datasets/osunlp/MagicBrush): ``img_id`` string, ``turn_index`` int32,
  ``source_img``, ``mask_img``, ``target_img`` Image, ``instruction`` string; ``mask_img`` is RGBA, the
  edited area transparent (OSU-NLP-Group/MagicBrush issue #10), and of another size than the source;
- InstructPix2Pix: a ``DatasetDict`` (``train``) with the features of
  huggingface.co/datasets/timbrooks/instructpix2pix-clip-filtered: ``original_prompt``, ``original_image``,
  ``edit_prompt``, ``edited_prompt``, ``edited_image``;
- LLaVA: ``llava_v1_5_mix665k.json``-style list of ``{id, image, conversations: [{from, value}]}`` with
  ``<image>`` in the first human turn (haotian-liu/LLaVA, ``llava/train/train.py``,
  ``LazySupervisedDataset``), images under ``coco/train2017/`` beside the JSON, and one text-only sample.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from fsmi_bench.io import save_png
from tests.support.coco_folder import CATEGORIES

WIDTH, HEIGHT = 64, 48


def _photo(rng, width=WIDTH, height=HEIGHT) -> np.ndarray:
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image[:, : width // 2] //= 2
    return image


def _instances(images: list[dict], annotations: list[dict]) -> dict:
    return {"info": {"description": "stand-in"}, "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}],
            "images": images, "annotations": annotations, "categories": CATEGORIES}


def write_refcoco(data_root: Path, photos: int = 8, grefcoco: bool = False) -> Path:
    """A refer-layout folder (``refcoco`` or ``grefcoco``) under ``data_root``; returns the dataset folder."""
    rng = np.random.default_rng(1)
    name = "grefcoco" if grefcoco else "refcoco"
    image_dir = data_root / ("images/train2014" if grefcoco else "images/mscoco/images/train2014")
    images, annotations, refs = [], [], []
    for number in range(1, photos + 1):
        image_id = 500_000 + number
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        save_png(image_dir / file_name, _photo(rng))  # PNG bytes under a .jpg name, as PIL reads either
        images.append({"id": image_id, "file_name": file_name, "width": WIDTH, "height": HEIGHT, "license": 1,
                       "coco_url": "", "flickr_url": "", "date_captured": ""})
        left = {"id": 1_000_000 + 10 * number, "image_id": image_id, "category_id": 18, "iscrowd": 0, "area": 400.0,
                "bbox": [4, 10, 20, 20], "segmentation": [[4, 10, 24, 10, 24, 30, 4, 30]]}
        right = {"id": 1_000_000 + 10 * number + 1, "image_id": image_id, "category_id": 18, "iscrowd": 0,
                 "area": 300.0, "bbox": [40, 8, 20, 30], "segmentation": [[40, 8, 60, 8, 50, 38]]}
        annotations += [left, right]
        split = "train" if number <= photos - 2 else "val"
        for side, annotation in (("left", left), ("right", right)):
            ref_id = len(refs)
            sentences = [{"tokens": ["the", "dog", "on", "the", side], "raw": f"The dog on the {side.upper()}",
                          "sent_id": 2 * ref_id + k, "sent": f"the dog on the {side}" + (" side" if k else "")}
                         for k in range(2)]
            ann_id = [annotation["id"]] if grefcoco else annotation["id"]
            ref = {"sent_ids": [s["sent_id"] for s in sentences], "file_name": file_name[:-4] + f"_{ref_id}.jpg",
                   "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split,
                   "sentences": sentences, "category_id": [18] if grefcoco else 18}
            if grefcoco:
                ref["no_target"] = False
            refs.append(ref)
        if grefcoco:  # one expression for both dogs, one with no target
            both = {"sent_ids": [9000 + number], "file_name": file_name, "ann_id": [left["id"], right["id"]],
                    "ref_id": len(refs), "image_id": image_id, "split": split, "category_id": [18, 18],
                    "no_target": False, "sentences": [{"tokens": ["both", "dogs"], "raw": "both dogs",
                                                       "sent_id": 9000 + number, "sent": "both dogs"}]}
            none = {**both, "ref_id": len(refs) + 1, "ann_id": [-1], "category_id": [-1], "no_target": True,
                    "sent_ids": [9500 + number], "sentences": [{"tokens": ["the", "cat"], "raw": "the cat",
                                                                 "sent_id": 9500 + number, "sent": "the cat"}]}
            refs += [both, none]
    folder = data_root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(_instances(images, annotations)), encoding="utf-8")
    if grefcoco:
        (folder / "grefs(unc).json").write_text(json.dumps(refs), encoding="utf-8")
    else:
        with open(folder / "refs(unc).p", "wb") as handle:
            pickle.dump(refs, handle, protocol=0)  # Python 2 cPickle.dump default, which refer.py used
    return folder


def _edited(rng, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    edited = image.copy()
    edited[y0:y1, x0:x1] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return edited


def write_magicbrush(root: Path, rows: int = 6) -> Path:
    import datasets

    rng = np.random.default_rng(2)
    features = datasets.Features({"img_id": datasets.Value("string"), "turn_index": datasets.Value("int32"),
                                  "source_img": datasets.Image(), "mask_img": datasets.Image(),
                                  "instruction": datasets.Value("string"), "target_img": datasets.Image()})

    def split(count: int, offset: int, instruction: str):
        columns = {name: [] for name in features}
        for number in range(count):
            source = _photo(rng)
            box = (10 + number, 12, 34 + number, 36)
            # The mask: the source image, RGBA, alpha 0 where the editor erased; stored at twice the size.
            rgba = np.dstack([source, np.full(source.shape[:2], 255, np.uint8)])
            rgba[box[1]:box[3], box[0]:box[2], 3] = 0
            from PIL import Image

            mask = Image.fromarray(rgba, "RGBA").resize((2 * WIDTH, 2 * HEIGHT), Image.Resampling.NEAREST)
            columns["img_id"].append(str(327_000 + offset + number // 2))
            columns["turn_index"].append(1 + number % 2)
            columns["source_img"].append(Image.fromarray(source))
            columns["mask_img"].append(mask)
            columns["instruction"].append(f"{instruction} {number}")
            columns["target_img"].append(Image.fromarray(_edited(rng, source, box)))
        return datasets.Dataset.from_dict(columns, features=features)

    datasets.DatasetDict({"train": split(rows, 0, "put a hat on the dog"),
                          "dev": split(2, 100, "make the sky pink")}).save_to_disk(str(root))
    return root


def write_ip2p(root: Path, rows: int = 6) -> Path:
    import datasets
    from PIL import Image

    rng = np.random.default_rng(3)
    features = datasets.Features({"original_prompt": datasets.Value("string"), "original_image": datasets.Image(),
                                  "edit_prompt": datasets.Value("string"), "edited_prompt": datasets.Value("string"),
                                  "edited_image": datasets.Image()})
    columns = {name: [] for name in features}
    for number in range(rows):
        original = _photo(rng)
        columns["original_prompt"].append(f"a photo of a street {number}")
        columns["original_image"].append(Image.fromarray(original))
        columns["edit_prompt"].append("make the car red")
        columns["edited_prompt"].append(f"a photo of a street with a red car {number}")
        columns["edited_image"].append(Image.fromarray(_edited(rng, original, (30, 20, 50, 40))))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns, features=features)}).save_to_disk(str(root))
    return root


def write_llava(root: Path, samples: int = 5) -> Path:
    """``root/llava_v1_5_mix665k.json`` and its images; returns the JSON file."""
    rng = np.random.default_rng(4)
    data = []
    for number in range(samples):
        image = f"coco/train2017/{number:012d}.jpg"
        save_png(root / image, _photo(rng, 40 + 8 * number, 32))
        data.append({"id": f"{number:012d}", "image": image, "conversations": [
            {"from": "human", "value": f"<image>\nWhat colour is the bus {number}?"},
            {"from": "gpt", "value": "The bus is white and red."},
            {"from": "human", "value": "How many wheels can you see?"},
            {"from": "gpt", "value": f"I can see {number + 2} wheels."}]})
    data.append({"id": "text-only", "conversations": [{"from": "human", "value": "Say hi."},
                                                      {"from": "gpt", "value": "Hi."}]})
    file = root / "llava_v1_5_mix665k.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    return file


def write_fsmi_cases(root: Path, cases: int = 8) -> Path:
    """An FSMI folder (``cases.jsonl``) of single- and multi-image edit cases (FORMATS.md's keys)."""
    rng = np.random.default_rng(5)
    lines = []
    for number in range(cases):
        scene = _photo(rng)
        box = (8, 10, 30, 34)
        gt = _edited(rng, scene, box)
        region = np.zeros(scene.shape[:2], np.uint8)
        region[box[1]:box[3], box[0]:box[2]] = 255
        names = {key: f"photos/{number}_{key}.png" for key in ("scene", "gt", "region", "subject")}
        save_png(root / names["scene"], scene)
        save_png(root / names["gt"], gt)
        save_png(root / names["region"], np.repeat(region[..., None], 3, axis=2))
        case = {"case_id": f"edit_{number:03d}", "op": "add", "scenario": "indoor",
                "instruction": "add a cup on the table", "label": "cup", "scene": names["scene"], "gt": names["gt"],
                "region": names["region"], "origin": "stand-in, CC0"}
        if number % 2:
            save_png(root / names["subject"], _photo(rng, 24, 24))
            case.update(kind="multi", complexity="simple", subject=names["subject"])
        else:
            case.update(kind="single")
        lines.append(json.dumps(case))
    (root / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
