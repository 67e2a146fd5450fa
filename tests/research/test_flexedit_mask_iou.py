"""research/flexedit_training/flexedit_mask_iou.py measures saved pipelines on chosen examples of the evaluation sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "research" / "flexedit_training" / "flexedit_mask_iou.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_measures_a_saved_pipeline_on_the_examples_asked_for(tmp_path):
    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from flexedit_model.evaluation import evaluation_sets
    from flexedit_model.training.data import load_training_content

    config = load_config("tiny")
    build_pipeline(config, seed=0).save_pretrained(tmp_path / "pipeline")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "pipeline"), "--first", "3", "--count", "2",
                             "--steps", "2", "--sets", "pasted,training", "--drawings", str(tmp_path / "drawings")],
                            env=ENV, capture_output=True, text=True, timeout=280, check=True)
    reference, measured = (json.loads(line) for line in result.stdout.splitlines())
    assert reference["resolution"] == config.resolution and set(reference) >= {"pasted", "training"}
    assert "heldout" not in reference and "heldout" not in measured

    # The box figure of examples 3 and 4, computed here with plain numpy.
    def box_iou(example):
        rows, cols = np.nonzero(example.mask)
        box = np.zeros_like(example.mask)
        box[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1] = True
        return (box & example.region).sum() / (box | example.region).sum()

    content = load_training_content("mini", "heldout"), load_training_content("mini", "train")
    pasted = evaluation_sets(*content, config.resolution, count=2, first=3)["pasted"]
    # Making only some sets gives the same examples as making all three.
    only = evaluation_sets(*content, config.resolution, count=2, first=3, names=("pasted",))
    assert list(only) == ["pasted"]
    assert all((a.mask == b.mask).all() and (a.region == b.region).all() for a, b in zip(only["pasted"], pasted))
    assert reference["pasted"]["copy_paste_box"] == round(float(np.mean([box_iou(e) for e in pasted])), 4)
    assert measured["pipeline"] == str(tmp_path / "pipeline") and measured["steps"] == 2
    assert all(0 <= measured[name]["iou"] <= 1 and 0 <= measured[name]["drawn_coverage"] <= 1
               for name in ("pasted", "training"))
    # Paired with the box: the mean difference is the difference of the means (up to rounding).
    for name in ("pasted", "training"):
        assert abs(measured[name]["minus_box"] - (measured[name]["iou"] - reference[name]["copy_paste_box"])) < 2e-4
        assert measured[name]["beats_box"] in (0.0, 0.5, 1.0)
        if "minus_box_95ci" in measured[name]:
            low, high = measured[name]["minus_box_95ci"]
            assert low <= measured[name]["minus_box"] <= high
    # Per label: the labels of the examples, and counts and means that add up to the set's.
    assert set(measured["pasted"]["by_label"]) == {example.label for example in pasted}
    for name in ("pasted", "training"):
        groups = measured[name]["by_label"].values()
        assert sum(group["examples"] for group in groups) == 2
        for key, whole in (("iou", measured[name]["iou"]), ("box", reference[name]["copy_paste_box"])):
            assert abs(sum(group["examples"] * group[key] for group in groups) / 2 - whole) < 2e-4

    # The drawings: one row per example; input, true mask, box, then the pipeline's drawing, in square
    # tiles enlarged to at least 128 px (the tiny config draws at 32).
    from PIL import Image

    sheet = Image.open(tmp_path / "drawings" / "pasted_masks.png")
    width, height = sheet.size
    assert width == 2 * height and height // 2 >= 128 and (height // 2) % config.resolution == 0
    assert sorted(path.name for path in (tmp_path / "drawings").iterdir()) == ["pasted_masks.png",
                                                                               "training_masks.png"]


def test_a_folder_that_is_not_a_pipeline_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=ENV, capture_output=True, text=True,
                            timeout=280)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: not a FlexEdit pipeline folder (no model_index.json): {tmp_path}"


def test_drawings_given_a_file_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "taken").write_text("")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--drawings", str(tmp_path / "taken")],
                            env=ENV, capture_output=True, text=True, timeout=280)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: --drawings takes a folder; {tmp_path / 'taken'} is a file"
