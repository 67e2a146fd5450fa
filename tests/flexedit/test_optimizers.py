"""``training.optimizer``: AdamW by default; bitsandbytes' AdamW8bit when asked for, with a one-line message
naming the pip command when bitsandbytes is not installed."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from flexedit_model.config import load_config
from flexedit_model.training.settings import TrainingSettings
from fsmi_bench.errors import BadInputError

pytestmark = pytest.mark.usefixtures("one_thread")


def with_optimizer(name):
    config = load_config("tiny")
    return replace(config, training={**config.training, "optimizer": name})


def test_the_optimizer_setting_defaults_to_adamw_and_names_the_bad_value():
    assert TrainingSettings.from_config(load_config("tiny").training).optimizer == "adamw"
    assert TrainingSettings.from_config(with_optimizer("adamw8bit").training).optimizer == "adamw8bit"
    with pytest.raises(BadInputError, match=r"training\.optimizer must be one of 'adamw', 'adamw8bit', got 'sgd'"):
        TrainingSettings.from_config(with_optimizer("sgd").training)


def test_adamw8bit_without_bitsandbytes_is_one_line_naming_the_pip_command(tmp_path, monkeypatch):
    from flexedit_model.training.loop import train_flexedit
    from fsmi_bench.cli import main

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes raises ImportError
    with pytest.raises(BadInputError, match=r'needs bitsandbytes, which is not installed: pip install "bitsandbytes'):
        train_flexedit(with_optimizer("adamw8bit"), "mini", tmp_path / "run", steps=1, progress=False)
    assert not (tmp_path / "run").exists()
    config_file = tmp_path / "tiny8bit.json"
    config_file.write_text(json.dumps(with_optimizer("adamw8bit").to_dict()))
    result = CliRunner().invoke(main, ["train", "flexedit", "--config", str(config_file),
                                       "--out", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install" in lines[0]
    assert not (tmp_path / "run").exists()


def test_adamw8bit_trains_with_8bit_moments_and_resumes(tmp_path):
    pytest.importorskip("bitsandbytes", reason="the adamw8bit extra is not installed (pip install -e '.[adamw8bit]')")
    from flexedit_model.training.loop import train_flexedit

    config = with_optimizer("adamw8bit")
    first = train_flexedit(config, "mini", tmp_path / "run", steps=2, progress=False)
    assert all(math.isfinite(loss) for loss in first.losses)
    state = torch.load(tmp_path / "run" / "state-00000002" / "optimizer.bin", weights_only=False)

    def tensors(entry):  # bitsandbytes nests its quantised state in a dict of its own
        for key, value in entry.items():
            yield from tensors(value) if isinstance(value, dict) else [(key, value)]

    moments = [value for entry in state["state"].values() for key, value in tensors(entry) if key == "state1"]
    # The large tensors (the UNet's convolutions, ...) keep 8-bit moments.
    assert any(moment.dtype == torch.uint8 for moment in moments)
    resumed = train_flexedit(config, "mini", tmp_path / "run", steps=3, resume=True, progress=False)
    assert resumed.first_step == 2 and len(resumed.losses) == 1 and math.isfinite(resumed.losses[0])
