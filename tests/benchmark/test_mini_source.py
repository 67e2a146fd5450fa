"""The embedded source: real photos, real masks, documented origins, reproducible GrabCut masks."""

import numpy as np

from fsmi_bench.benchmark.sources.mini import PHOTOS, load_mini, load_photo
from fsmi_bench.benchmark.sources.mini_grabcut import GRABCUT_OBJECTS, derive_mask, shipped_mask_path
from fsmi_bench.io import load_mask


def test_mini_offers_scenes_of_both_scenarios_and_objects_with_masks():
    content = load_mini()
    assert {scene.scenario for scene in content.scenes} == {"indoor", "outdoor"}
    assert len(content.objects) >= 12 and len({o.label for o in content.objects}) >= 10
    for obj in content.objects:
        assert obj.mask.shape == obj.image.shape[:2] and obj.mask.dtype == bool
        assert 0.002 < obj.mask.mean() < 0.6, obj.object_id
        assert obj.photo_id in PHOTOS and obj.origin
    for photo in PHOTOS.values():
        assert photo.origin in content.card


def test_shipped_grabcut_masks_match_a_fresh_derivation():
    for item in GRABCUT_OBJECTS:
        shipped = load_mask(shipped_mask_path(item.name))
        fresh = derive_mask(load_photo(item.photo), item.box, item.iterations, item.ellipse)
        iou = (shipped & fresh).sum() / (shipped | fresh).sum()
        assert iou > 0.97, (item.name, iou)
        x0, y0, x1, y1 = item.box
        assert not shipped[:y0].any() and not shipped[:, :x0].any()  # GrabCut keeps inside its box


def background_block_sides(image: np.ndarray, mask: np.ndarray) -> list[str]:
    """Sides of the mask's tight box along which the cut-out keeps a block of background.

    A cut-out of an object meets its box's sides over short stretches with the object's own varied
    colours. Background that GrabCut kept fills a band along a side (over 40 % of the outer 4 % of rows
    or columns) with near-black pixels (over 80 % of the kept ones) or near-constant colour (std < 6).
    Sides on the photo's edge are skipped: there the photo, not the mask, cuts the object.
    """
    rows, columns = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    kept, rgb = mask[y0:y1, x0:x1], image[y0:y1, x0:x1].astype(float)
    height, width = kept.shape
    bands = {"top": (y0 == 0, np.s_[:max(2, round(0.04 * height)), :]),
             "bottom": (y1 == mask.shape[0], np.s_[-max(2, round(0.04 * height)):, :]),
             "left": (x0 == 0, np.s_[:, :max(2, round(0.04 * width))]),
             "right": (x1 == mask.shape[1], np.s_[:, -max(2, round(0.04 * width)):])}
    sides = []
    for side, (on_photo_edge, band) in bands.items():
        pixels = rgb[band][kept[band]]
        if on_photo_edge or kept[band].mean() <= 0.4:
            continue
        if (pixels.max(axis=1) < 40).mean() > 0.8 or pixels.std(axis=0).mean() < 6:
            sides.append(side)
    return sides


def test_every_embedded_cut_out_holds_only_its_object():
    for obj in load_mini().objects:
        assert background_block_sides(obj.image, obj.mask) == [], obj.object_id


def test_the_block_check_catches_the_helmet_cut_by_its_box_alone():
    helmet, = [item for item in GRABCUT_OBJECTS if item.name == "astronaut_helmet"]
    photo = load_photo(helmet.photo)
    # the box alone keeps the black stand above the helmet (its visor is as black)
    assert "top" in background_block_sides(photo, derive_mask(photo, helmet.box, helmet.iterations))
    assert background_block_sides(photo, load_mask(shipped_mask_path(helmet.name))) == []
