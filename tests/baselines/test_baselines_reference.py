"""The reference methods that need no weights: identity, copy-paste, inpaint."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.copy_paste import CopyPaste, cut_out_subject, key_out_plain_background, paste_into_box
from baselines.identity import Identity
from baselines.inpaint import Inpaint, inpaint_region
from fsmi_bench.errors import BadInputError
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.method import METHODS, EditRequest
from tests.support.run_fixtures import make_benchmark, output_digests


def _scene(height=48, width=64) -> np.ndarray:
    gradient = np.linspace(30, 220, width)[None, :, None] + np.zeros((height, 1, 3))
    return gradient.astype(np.uint8)


def _request(scene, mask, subject=None, op="add", kind="single", complexity="none", seed=0) -> EditRequest:
    return EditRequest(scene=scene, subject=subject, mask=mask, instruction=f"{op} a ball", label="ball",
                       seed=seed, kind=kind, op=op, complexity=complexity)


def _box_mask(height=48, width=64, box=(10, 8, 50, 40)) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _subject_on_white() -> np.ndarray:
    """A 30 x 20 (H x W) white image holding a green 20 x 10 bar with a white hole inside it."""
    subject = np.full((30, 20, 3), 255, dtype=np.uint8)
    subject[5:25, 5:15] = (0, 200, 0)
    subject[12:16, 8:12] = 255  # same colour as the background, but enclosed: part of the subject
    return subject


def test_registered_reference_methods_need_nothing():
    for name in ("identity", "copy-paste", "inpaint"):
        assert METHODS.entry(name).needs == ()
    assert METHODS.get("copy-paste") is CopyPaste


def test_identity_returns_a_copy_of_the_scene():
    scene = _scene()
    output = Identity().edit(_request(scene, _box_mask()))
    np.testing.assert_array_equal(output, scene)
    assert output is not scene and output.dtype == np.uint8


def test_inpaint_fills_only_the_mask_from_its_surroundings():
    scene = np.full((40, 40, 3), 120, dtype=np.uint8)
    mask = _box_mask(40, 40, (15, 15, 25, 25))
    scene[mask] = (255, 0, 0)  # an "object" to remove
    output = Inpaint().edit(_request(scene, mask, op="remove"))
    np.testing.assert_array_equal(output[~mask], scene[~mask])
    assert np.abs(output[mask].astype(int) - 120).max() <= 2
    np.testing.assert_array_equal(Inpaint().edit(_request(scene, mask, op="remove")), output)
    np.testing.assert_array_equal(inpaint_region(scene, np.zeros((40, 40), bool)), scene)
    grown = inpaint_region(scene, _box_mask(40, 40, (17, 17, 23, 23)), dilate=3)
    assert np.abs(grown[16:24, 16:24].astype(int) - 120).max() <= 2
    with pytest.raises(BadInputError, match="unknown"):
        inpaint_region(scene, mask, algorithm="patchmatch")


def test_plain_background_is_keyed_out_but_enclosed_holes_are_kept():
    alpha = key_out_plain_background(_subject_on_white())
    expected = np.zeros((30, 20), dtype=bool)
    expected[5:25, 5:15] = True
    np.testing.assert_array_equal(alpha, expected)
    cutout, cut_alpha = cut_out_subject(_subject_on_white(), complexity="simple")
    assert cutout.shape == (20, 10, 3) and cut_alpha.all()


def test_complex_subjects_are_used_whole_or_cut_with_grabcut():
    rng = np.random.default_rng(0)
    subject = rng.integers(0, 255, (40, 30, 3)).astype(np.uint8)
    cutout, alpha = cut_out_subject(subject, complexity="complex")
    assert cutout.shape == subject.shape and alpha.all()
    # A textured blue background around a red block: GrabCut from the centred box finds the block.
    subject = (np.array([40, 90, 160]) + rng.integers(-30, 30, (40, 30, 3))).astype(np.uint8)
    subject[10:30, 8:22] = (250, 20, 20)
    first = cut_out_subject(subject, complexity="complex", complex_cutout="grabcut", seed=3)
    second = cut_out_subject(subject, complexity="complex", complex_cutout="grabcut", seed=3)
    np.testing.assert_array_equal(first[1], second[1])
    assert first[0].shape == (20, 14, 3) and first[1].all()
    with pytest.raises(BadInputError, match="complex_cutout"):
        cut_out_subject(subject, complexity="complex", complex_cutout="sam")


def test_unknown_complexity_detects_a_plain_border():
    _, alpha = cut_out_subject(_subject_on_white(), complexity="none")
    assert alpha.shape == (20, 10)  # cropped to the keyed-out bar


def test_copy_paste_scales_the_subject_into_the_mask_box_keeping_aspect():
    scene = _scene()
    mask = _box_mask(box=(10, 8, 50, 40))  # 40 wide, 32 high
    output = CopyPaste().edit(_request(scene, mask, subject=_subject_on_white(), kind="multi",
                                       complexity="simple"))
    changed = np.any(output != scene, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    # The 20 x 10 bar scaled by 32/20 = 1.6 -> 32 x 16, centred in the box: x from 10 + (40-16)//2 = 22.
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (8, 40, 22, 38)
    assert not changed[~mask].any()
    pasted = output[8:40, 22:38].astype(int)
    assert (np.abs(pasted - (0, 200, 0)).max(axis=2) < 5).mean() > 0.8
    assert (pasted[14, 8] == 255).all()  # the enclosed white hole came along, scaled to rows 11-17


def test_copy_paste_single_image_cases():
    scene = _scene()
    mask = _box_mask(box=(20, 10, 30, 20))
    np.testing.assert_array_equal(CopyPaste().edit(_request(scene, mask, op="add")), scene)
    np.testing.assert_array_equal(CopyPaste().edit(_request(scene, mask, op="remove")),
                                  inpaint_region(scene, mask))
    np.testing.assert_array_equal(paste_into_box(scene, scene, mask, np.zeros_like(mask)), scene)


@pytest.mark.parametrize("name", ["identity", "copy-paste", "inpaint"])
def test_reference_methods_run_deterministically_over_a_benchmark(tmp_path, name):
    bench = make_benchmark(tmp_path / "bench", n_single=3, n_multi=2)
    for run in ("first", "second"):
        summary = run_method(RunConfig(method=name, bench=bench, out=tmp_path / run, progress=False))
        assert (summary.written, summary.failed) == (15, 0)
    assert output_digests(tmp_path / "first") == output_digests(tmp_path / "second")


def test_copy_paste_cuts_the_subject_along_its_true_mask_when_the_benchmark_gives_it():
    # A complex subject: a red disc on noise. Without its mask the whole image is pasted (noise included);
    # with it, only the disc's pixels reach the scene, and the scene keeps every other pixel of the box.
    rng = np.random.default_rng(1)
    subject = rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 12 ** 2
    subject[disc] = (230, 10, 10)
    scene = np.full((60, 80, 3), 100, dtype=np.uint8)
    mask = _box_mask(60, 80, (20, 10, 60, 50))  # 40 x 40: the disc's 25 x 25 crop scales up to fill it

    def request(subject_mask):
        return EditRequest(scene=scene, subject=subject, mask=mask, instruction="add a disc", label="disc", seed=0,
                           kind="multi", op="add", complexity="complex", subject_mask=subject_mask)

    with_mask = CopyPaste().edit(request(disc))
    changed = np.any(with_mask != scene, axis=2)
    assert changed[mask].mean() > 0.6 and not changed[~mask].any()
    pasted = with_mask[changed].astype(int)
    assert np.abs(pasted - (230, 10, 10)).max() <= 3  # only the disc's colour: no noise from its background
    corners = with_mask[10:14, 20:24]  # the box's corner lies outside the scaled disc: the scene stays
    np.testing.assert_array_equal(corners, scene[10:14, 20:24])

    whole = CopyPaste().edit(request(None))  # no true mask: the complex subject is pasted whole
    assert np.any(whole[10:14, 20:24] != scene[10:14, 20:24])
    keyed = CopyPaste({"use_subject_mask": False}).edit(request(disc))
    np.testing.assert_array_equal(keyed, whole)
    with pytest.raises(BadInputError, match="use_subject_mask"):
        CopyPaste({"use_subject_mask": "yes"}).setup()
