"""research/flexedit_training/gpu_flexedit.sh, the prepared GPU check, runs end to end on CPU with the tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_dry_run_reports_what_the_issue_asks_for(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CONFIG": "tiny", "TRAIN_SECONDS": "3",
           "EVAL_EXAMPLES": "3", "EVAL_STEPS": "2", "SCORE_CASES": "0", "OVERHEAD": "0"}
    result = subprocess.run(["bash", str(ROOT / "research" / "flexedit_training" / "gpu_flexedit.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"] == "tiny" and report["eval_examples"] == 3 and report["eval_steps"] == 2
    assert report["train_steps"] >= 1 and report["train_samples_per_second"] > 0
    assert report["loss_curve"] and all("loss" in point for point in report["loss_curve"])
    for name in ("figures.md", "loss.csv", "loss.png", "heldout_masks.png", "heldout_pasted_masks.png", "log.txt"):
        assert (out / name).is_file(), name
    assert not (out / "work").exists()  # checkpoints stay in the temporary WORK folder, removed at the end

    # Before and after training, against the box, for each evaluation set; the per-example pairing agrees
    # with the means, and the verdict with the figures it is made of.
    for prefix, trained, untrained in (("", "trained", "untrained"),
                                       ("pasted_", "trained_heldout_pasted", "untrained_heldout_pasted"),
                                       ("training_", "trained_on_training_objects", "untrained_on_training_objects")):
        box = report[f"{prefix}iou_copy_paste_box"]
        paired = report[f"{prefix}trained_against_box"]
        assert abs(paired["minus_box"] - (report[trained]["iou"] - box)) < 2e-4
        assert 0 <= paired["beats_box"] <= 1
        verdict = report[f"{prefix}trained_beats_untrained_and_copy_paste"]
        assert verdict == (report[trained]["iou"] > max(report[untrained]["iou"], box))
