"""flexedit_model.evaluation, in-process: the mask-understanding figures of the FlexEdit training study."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from flexedit_model import evaluation


def _example(mask, region, label="cup"):
    side = mask.shape[0]
    return SimpleNamespace(mask=mask, region=region, label=label, scene=np.zeros((side, side, 3), np.uint8),
                           instruction="draw it")


def _rectangle(side, top, left, height, width):
    mask = np.zeros((side, side), bool)
    mask[top:top + height, left:left + width] = True
    return mask


def test_box_and_iou_are_the_plain_definitions():
    ring = _rectangle(16, 2, 3, 6, 8) & ~_rectangle(16, 3, 4, 4, 6)  # a hollow rectangle
    assert (evaluation.box_of(ring) == _rectangle(16, 2, 3, 6, 8)).all()
    assert not evaluation.box_of(np.zeros((4, 4), bool)).any()
    a, b = _rectangle(10, 0, 0, 4, 4), _rectangle(10, 2, 2, 4, 4)
    assert evaluation.iou(a, b) == pytest.approx(4 / 28)
    assert evaluation.iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0
    examples = [_example(a, b), _example(b, b)]
    assert evaluation.box_ious(examples) == [pytest.approx(4 / 28), 1.0]
    assert evaluation.reference_ious(examples) == {"free_shape_mask": round((4 / 28 + 1) / 2, 4),
                                                   "copy_paste_box": round((4 / 28 + 1) / 2, 4)}


def test_against_box_pairs_examples_and_by_label_adds_up():
    scores, box = [0.5, 0.9, 0.2, 0.7], [0.4, 0.6, 0.3, 0.7]
    figures = evaluation.against_box(scores, box)
    assert figures["minus_box"] == round(float(np.mean(np.subtract(scores, box))), 4)
    assert figures["beats_box"] == 0.5  # 2 of 4 strictly better; a tie is not a win
    low, high = figures["minus_box_95ci"]
    assert low <= figures["minus_box"] <= high
    assert "minus_box_95ci" not in evaluation.against_box([0.5, 0.5], [0.4, 0.4])  # no spread to resample
    examples = [_example(np.ones((2, 2), bool), np.ones((2, 2), bool), label) for label in "abab"]
    groups = evaluation.by_label(examples, scores, box)
    assert groups == {"a": {"examples": 2, "iou": 0.35, "box": 0.35}, "b": {"examples": 2, "iou": 0.8, "box": 0.65}}


def test_moved_mask_goes_to_the_opposite_quadrant():
    moved = evaluation.moved_mask(_rectangle(20, 1, 1, 4, 4))
    rows, cols = np.nonzero(moved)
    assert rows.min() >= 10 and cols.min() >= 10 and moved.sum() == 16


def test_mask_understanding_and_sensitivity_run_on_the_tiny_pipeline(one_thread, tmp_path):
    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from flexedit_model.training.data import load_training_content

    config = load_config("tiny")
    pipeline = build_pipeline(config, seed=0)
    pipeline.set_progress_bar_config(disable=True)
    content = load_training_content("mini", "heldout"), load_training_content("mini", "train")
    sets = evaluation.evaluation_sets(*content, config.resolution, count=2, names=("pasted",))
    assert list(sets) == ["pasted"] and len(sets["pasted"]) == 2
    drawings, scores = [], []
    figures = evaluation.mask_understanding(pipeline, sets["pasted"], steps=1, drawings=drawings, scores=scores)
    assert len(drawings) == len(scores) == 2 and drawings[0].shape == sets["pasted"][0].region.shape
    assert figures["iou"] == round(float(np.mean(scores)), 4) and 0 <= figures["drawn_coverage"] <= 1
    change = evaluation.mask_sensitivity(pipeline, sets["pasted"])
    assert set(change) == {f"{name}{suffix}" for name in ("mask_moved", "other_scene")
                           for suffix in ("", "_vllm_states", "_qformer_e")}
    assert all(value >= 0 for value in change.values())
    evaluation.save_drawings(tmp_path / "sheet.png", sets["pasted"], {"drawn": drawings})
    assert (tmp_path / "sheet.png").is_file()


def test_loss_points_picks_evenly_spaced_rows(tmp_path):
    rows = ["step,loss,diffusion_loss,language_loss,layout_loss"] + [f"{i},{1 / i},0.5,0.1," for i in range(1, 21)]
    (tmp_path / "loss.csv").write_text("\n".join(rows) + "\n")
    points = evaluation.loss_points(tmp_path / "loss.csv", count=3)
    assert [point["step"] for point in points] == [1.0, 11.0, 20.0]  # rows 0, round(9.5) = 10 and 19
    assert "layout_loss" not in points[0]  # an empty column is left out
