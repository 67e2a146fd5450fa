"""What ``fsmi train flexedit`` calls: a named (or JSON) config and a source -> a trained pipeline folder."""

from __future__ import annotations

from flexedit_model.config import load_config
from flexedit_model.training.loop import TrainSummary, train_flexedit


def train(config_name: str, data: str | list[str], out: str, steps: int | None = None,
          resume: bool = False) -> TrainSummary:
    """Train FlexEdit with config ``config_name`` (tiny, small, cpu-check, paper or a JSON path) on ``data``
    (one source spec, or several ``SPEC=WEIGHT`` to mix)."""
    from flexedit_model.training.data_mix import parse_data

    parse_data(data)  # a bad --data answers before the config is read or anything is built
    return train_flexedit(load_config(config_name), data, out, steps=steps, resume=resume)
