"""The ``training`` section of a FlexEdit config, read and checked once: ``TrainingSettings.from_config``.

Every problem is a one-line BadInputError naming the key (``training.<key> must be ..., got ...``), so a
bad config stops a run before it builds a model or writes anything.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from fsmi_bench.errors import BadInputError

MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")  # what accelerate's Accelerator accepts
OPTIMIZERS = ("adamw", "adamw8bit")  # torch's AdamW; bitsandbytes' AdamW8bit (training/optimizers.py)
_REQUIRED = object()  # the default of a key every config must give

WHOLE_FROM_1 = "a whole number, 1 or more"
FRACTION = "a number from 0 to 1"


@dataclass(frozen=True)
class TrainingSettings:
    """One field per key of a config's ``training`` section; the fields with defaults may be left out."""

    batch_size: int  # examples per micro-batch on each process
    learning_rate: float  # the base rate (before any cooldown)
    condition_dropout: float  # p: drop the edit condition, the scene latent, or both for p of examples each
    language_loss_weight: float  # w of L = L_diffusion + w * L_VLLM
    mask_task_fraction: float  # the share of examples from the mask-understanding task
    multi_fraction: float  # of the edit examples, the share that place several objects
    mixed_precision: str  # one of MIXED_PRECISION
    gradient_checkpointing: bool
    checkpoint_every: int  # steps between checkpoints
    log_every: int  # steps between rows of loss.csv
    seed: int
    steps: int  # the step to reach when the caller gives none (no default: a run's length is a choice)
    high_noise_bias: float = 1.0  # 1 = uniform timesteps; above 1, noisier ones more often
    layout_loss_weight: float = 0.0  # 0 = no layout read-out
    layout_grid: int = 8  # the side of the layout read-out's grid (with layout_loss_weight > 0)
    lr_cooldown_fraction: float = 0.0  # the last share of the run over which the rate falls to 0
    mask_task_mix: Mapping[str, float] | None = None  # weights of the mask-task kinds; None: photos only
    optimizer: str = "adamw"  # one of OPTIMIZERS
    # micro-batches whose gradients add up to one optimisation step (accelerate's gradient accumulation)
    gradient_accumulation_steps: int = 1

    def effective_batch(self, processes: int = 1) -> int:
        """Examples per optimisation step over all processes: batch x accumulation x processes."""
        return self.batch_size * self.gradient_accumulation_steps * processes

    @classmethod
    def from_config(cls, training: dict) -> "TrainingSettings":
        """The settings of a config's ``training`` dict, or BadInputError naming the first bad key: an
        unknown key, a missing required one, or a value out of range."""
        if not isinstance(training, Mapping):
            raise BadInputError(f"training must be a mapping of settings, got {training!r}")
        _reject_unknown_keys(training, [field.name for field in fields(cls)])
        return cls(
            batch_size=_training_whole(training, "batch_size", _REQUIRED, 1, WHOLE_FROM_1),
            learning_rate=_training_number(training, "learning_rate", _REQUIRED, lambda value: value > 0,
                                           "a number above 0"),
            condition_dropout=_training_number(training, "condition_dropout", _REQUIRED, _fraction, FRACTION),
            language_loss_weight=_training_number(training, "language_loss_weight", _REQUIRED,
                                                  lambda value: value >= 0, "a number, 0 or more"),
            mask_task_fraction=_training_number(training, "mask_task_fraction", _REQUIRED, _fraction, FRACTION),
            multi_fraction=_training_number(training, "multi_fraction", _REQUIRED, _fraction, FRACTION),
            mixed_precision=_training_choice(training, "mixed_precision", MIXED_PRECISION),
            gradient_checkpointing=_training_flag(training, "gradient_checkpointing"),
            checkpoint_every=_training_whole(training, "checkpoint_every", _REQUIRED, 1, WHOLE_FROM_1),
            log_every=_training_whole(training, "log_every", _REQUIRED, 1, WHOLE_FROM_1),
            seed=_training_whole(training, "seed", _REQUIRED, 0, "a whole number, 0 or more"),
            steps=_training_whole(training, "steps", _REQUIRED, 1, WHOLE_FROM_1),
            high_noise_bias=_training_number(training, "high_noise_bias", 1.0, lambda value: value > 0,
                                             "a number above 0 (1 = uniform timesteps)"),
            layout_loss_weight=_training_number(training, "layout_loss_weight", 0.0, lambda value: value >= 0,
                                                "a number, 0 or more (0 = no layout read-out)"),
            layout_grid=_training_whole(training, "layout_grid", 8, 1, WHOLE_FROM_1),
            lr_cooldown_fraction=_training_number(training, "lr_cooldown_fraction", 0.0, _fraction,
                                                  "a number from 0 to 1 (0 = constant learning rate)"),
            mask_task_mix=_training_mix(training),
            optimizer=_training_choice(training, "optimizer", OPTIMIZERS, "adamw"),
            gradient_accumulation_steps=_training_whole(training, "gradient_accumulation_steps", 1, 1,
                                                        WHOLE_FROM_1),
        )


def _fraction(value: float) -> bool:
    return 0 <= value <= 1


def _reject_unknown_keys(training: Mapping, known: list[str]) -> None:
    unknown = sorted(str(key) for key in training if key not in known)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(f"training.{key}" + (f" (did you mean training.{close[0]}?)" if close else ""))
    raise BadInputError(f"unknown training setting {', '.join(hints)}; known: {', '.join(known)}")


def _missing(training: Mapping, key: str, default, expected: str) -> bool:
    """Whether ``key`` is absent and may be (it has a default); BadInputError when it must be given."""
    if key in training:
        return False
    if default is _REQUIRED:
        raise BadInputError(f"training.{key} is missing: it must be {expected}")
    return True


def _training_number(training: Mapping, key: str, default, valid, expected: str) -> float:
    """``training[key]`` as a float, or BadInputError naming the key and what it should be."""
    if _missing(training, key, default, expected):
        return float(default)
    try:
        value = float(training[key])
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if not valid(value):  # NaN fails every comparison
        raise BadInputError(f"training.{key} must be {expected}, got {training[key]!r}")
    return value


def _training_whole(training: Mapping, key: str, default, minimum: int, expected: str) -> int:
    """``training[key]`` as an int of at least ``minimum`` (4 and 4.0 pass; 4.5, inf and "four" do not)."""
    value = _training_number(training, key, default, lambda value: value.is_integer() and value >= minimum,
                             expected)
    raw = training.get(key, default)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else int(value)


def _training_flag(training: Mapping, key: str) -> bool:
    _missing(training, key, _REQUIRED, "true or false")
    if not isinstance(training[key], bool):
        raise BadInputError(f"training.{key} must be true or false, got {training[key]!r}")
    return training[key]


def _training_choice(training: Mapping, key: str, choices: tuple[str, ...], default=_REQUIRED) -> str:
    expected = "one of " + ", ".join(repr(choice) for choice in choices)
    if _missing(training, key, default, expected):
        return default
    if training[key] not in choices:
        raise BadInputError(f"training.{key} must be {expected}, got {training[key]!r}")
    return training[key]


def _training_mix(training: Mapping) -> Mapping[str, float] | None:
    """``training.mask_task_mix``: None, or non-negative weights (not all 0) of the mask-task kinds, as
    TrainingExamples checks them, read-only."""
    from flexedit_model.training.data import MASK_TASK_KINDS

    mix = training.get("mask_task_mix")
    if mix is None:
        return None
    kinds = ", ".join(MASK_TASK_KINDS)
    if not isinstance(mix, Mapping):
        raise BadInputError(f"training.mask_task_mix must be null or weights of {kinds}, got {mix!r}")
    weights = {}
    for kind, weight in mix.items():
        try:
            weights[kind] = float(weight)
        except (TypeError, ValueError, OverflowError):
            weights[kind] = float("nan")
    values = list(weights.values())
    if (set(weights) - set(MASK_TASK_KINDS) or not values or not all(map(math.isfinite, values))
            or min(values) < 0 or sum(values) <= 0):
        # The message TrainingExamples gives for the same weights.
        raise BadInputError(f"training.mask_task_mix {dict(mix)}: give non-negative weights, not all 0, of {kinds}")
    return MappingProxyType(weights)
