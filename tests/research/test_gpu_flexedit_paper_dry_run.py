"""research/flexedit_training/gpu_flexedit_paper.sh, the prepared GPU check of the paper config, runs end to
end on CPU with tiny stand-ins in the real formats, with the settings it runs with on a GPU: bf16 autocast,
frozen bases in bfloat16, gradient checkpointing and accumulation, as paper.json gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flexedit_model.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_paper_gpu_check_dry_run_reports_its_figures(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "SIZE": "tiny", "DEVICE": "cpu",
           "ARGS": "--steps 1 --resolution 32 --batch-size 2 --edit-steps 2"}
    result = subprocess.run(["bash", str(ROOT / "research" / "flexedit_training" / "gpu_flexedit_paper.sh"), str(out)],
                            env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + (out / "log.txt").read_text()[-3000:]
    figures = json.loads((out / "figures.json").read_text())
    assert figures["size"] == "tiny" and figures["steps"] == 1 and figures["samples_per_second"] > 0
    assert figures["seconds_per_edit"] > 0 and figures["finite_output"]
    # What the run recorded it trained with: the paper config's settings, untouched by the dry run.
    paper = load_config("paper").training
    assert (figures["mixed_precision"], figures["gradient_checkpointing"]) == ("bf16", True)
    assert figures["mixed_precision"] == paper["mixed_precision"]
    assert figures["gradient_checkpointing"] == paper["gradient_checkpointing"]
    assert figures["gradient_accumulation_steps"] == paper["gradient_accumulation_steps"] == 4
    assert figures["effective_batch_size"] == 2 * 4
    assert figures["frozen_dtypes"] == {"vllm": "bfloat16", "image_encoder": "bfloat16", "vae": "bfloat16"}
    # The compact checkpoint: the trained parts, tokenizer and scheduler; no copy of LLaVA, CLIP or the VAE.
    assert 0 < figures["model_bytes"] < figures["checkpoint_bytes"]
    assert figures["optimizer"] == "adamw" and figures["state_bytes"] > 0
