"""The UNet placement probe (research/flexedit_training/flexedit_placement_probe.py) runs and reports IoU figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "research" / "flexedit_training" / "flexedit_placement_probe.py"


def _probe_module():
    # A research script, not a package module: loaded from its file.
    import importlib.util

    spec = importlib.util.spec_from_file_location("flexedit_placement_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mask_tokens_follow_the_mask():
    MaskTokens = _probe_module().MaskTokens

    tokens = MaskTokens("position", tokens=4, width=16, latent_channels=12, subject_slots=2)
    left, right = torch.zeros(1, 32, 32), torch.zeros(1, 32, 32)
    left[:, 8:16, 2:10], right[:, 8:16, 22:30] = 1, 1
    latents = torch.randn(1, 12, 8, 8)
    with torch.no_grad():
        first, second = tokens(left, latents), tokens(right, latents)
    assert first.shape == (1, 6, 16)
    assert not torch.allclose(first[:, :4], second[:, :4])
    assert torch.count_nonzero(first[:, 4:]) == 0  # the subject slots stay empty (lambda = 0)
    appearance = MaskTokens("appearance", tokens=4, width=16, latent_channels=12, subject_slots=2)
    with torch.no_grad():
        assert not torch.allclose(appearance(left, latents), appearance(right, latents))


def test_probe_runs_and_reports(tmp_path):
    out = tmp_path / "probe.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(PROBE), "--config", "tiny",
                    "--seconds", "1", "--eval-examples", "2", "--out", str(out)], check=True, env=env,
                   capture_output=True, timeout=280)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    reference, first, last = records[0], records[1], records[-1]
    assert reference["config"] == "tiny" and 0 < reference["heldout_iou_copy_paste_box"] <= 1
    assert reference["high_noise_bias"] == 1.0  # the tiny config sets none: uniform timesteps
    assert first["step"] == 0 and last["step"] > 0
    assert all(0 <= record[key] <= 1 for record in records[1:] for key in ("heldout_iou", "training_iou"))
    assert np.isfinite(last["loss"])


def test_probe_rejects_a_bad_noise_bias_in_one_line(tmp_path):
    out = tmp_path / "probe.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(PROBE), "--config",
                             "tiny", "--high-noise-bias", "0", "--out", str(out)], env=env, capture_output=True,
                            text=True, timeout=280)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: training.high_noise_bias must be")
    assert "Traceback" not in result.stderr and not out.exists()
