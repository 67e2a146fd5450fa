"""The optimiser a config's ``training.optimizer`` names, over the trained parameters.

- ``adamw``: ``torch.optim.AdamW`` (float32 moments: 8 bytes per trained parameter);
- ``adamw8bit``: bitsandbytes' ``AdamW8bit`` (block-wise 8-bit moments: about 2 bytes per parameter; for
  the paper config's 0.98 G trained parameters, computed from the count, 7.8 GB of moments become about
  2 GB). An optional extra (``pip install -e ".[adamw8bit]"``); tensors under 4096 values keep 32-bit
  moments, as bitsandbytes does.
Both without weight decay, the setting InstructPix2Pix fine-tuning recipes use for a few thousand steps.
"""

from __future__ import annotations

import torch

from fsmi_bench.errors import BadInputError

INSTALL_8BIT = 'pip install "bitsandbytes>=0.50" (or pip install -e ".[adamw8bit]")'


def check_available(name: str) -> None:
    """BadInputError, before a model is built, when ``name`` needs a package that is not importable."""
    if name == "adamw8bit":
        _bitsandbytes()


def _bitsandbytes():
    try:
        import bitsandbytes
    except ImportError:
        raise BadInputError(f'training.optimizer "adamw8bit" needs bitsandbytes, which is not installed: '
                            f"{INSTALL_8BIT}") from None
    except Exception as error:  # a broken native library raises other errors while importing
        raise BadInputError(f'training.optimizer "adamw8bit": bitsandbytes does not load here '
                            f"({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None
    return bitsandbytes


def make_optimizer(name: str, parameters, learning_rate: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    if name == "adamw8bit":
        return _bitsandbytes().optim.AdamW8bit(parameters, lr=learning_rate, weight_decay=0.0)
    raise BadInputError(f"training.optimizer must be 'adamw' or 'adamw8bit', got {name!r}")
