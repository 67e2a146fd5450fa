"""The embedded source: real photos, real masks, documented origins, reproducible GrabCut masks."""

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
        fresh = derive_mask(load_photo(item.photo), item.box, item.iterations)
        iou = (shipped & fresh).sum() / (shipped | fresh).sum()
        assert iou > 0.97, (item.name, iou)
        x0, y0, x1, y1 = item.box
        assert not shipped[:y0].any() and not shipped[:, :x0].any()  # GrabCut keeps inside its box
