"""Training on several sources at once, mixed by weight (the paper mixes segmentation sets for mask
understanding with editing data).

``--data SPEC[=WEIGHT]``, repeated: ``SPEC`` is a kind of training data and its path (``mini``, ``coco:PATH``,
``refcoco:PATH``, ``magicbrush:PATH``, ``ip2p:PATH``, ``fsmi:PATH``, ``hf:PATH``, ``llava:PATH``; see
``training/sources/``); ``WEIGHT`` a number, 0 or more (default 1), the text after the
last ``=``. Weights are shares of examples, normalised to sum to 1: ``--data coco:/data/coco=0.3 --data
fsmi:/data/edits=0.7`` draws 30 % of examples from COCO. (A path that holds ``=`` needs its weight
written out: ``coco:/data/a=b=1``.)

Each source keeps its own examples (its split, its photo sizes, its tasks); which source
example ``i`` comes from is drawn from the seed and ``i`` alone, so the mixture is deterministic given
the seed, resumable and shardable like a single source. One source with no weight is used as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fsmi_bench.errors import BadInputError

# Keeps the choice of source in a seed stream apart from the examples' own.
MIX_SEED_OFFSET = 104_729_000


@dataclass(frozen=True)
class DataSource:
    spec: str  # a source spec: mini, coco:PATH, ...
    weight: float  # its share of examples before normalising


def parse_data(values: str | Sequence[str]) -> list[DataSource]:
    """The sources of ``--data`` values (one string or several), or a one-line BadInputError: a weight that
    is not a number, negative or not finite, weights that sum to 0, an unknown source, a source given twice."""
    from flexedit_model.training.sources import KINDS

    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise BadInputError("--data: give at least one source, e.g. --data mini")
    sources = []
    for value in values:
        spec, weight = _split_weight(str(value))
        name = spec.partition(":")[0]
        if name not in KINDS:
            raise BadInputError(f"--data {value}: {KINDS.unknown_message(name)}")
        if any(source.spec == spec for source in sources):
            raise BadInputError(f"--data {spec} is given twice; give each source once, with its weight")
        sources.append(DataSource(spec, weight))
    if sum(source.weight for source in sources) <= 0:
        raise BadInputError("--data weights sum to 0: give at least one source a weight above 0")
    return sources


def _split_weight(value: str) -> tuple[str, float]:
    spec, equals, text = value.rpartition("=")
    if not equals:
        return value, 1.0
    try:
        weight = float(text)
    except ValueError:
        raise BadInputError(f"--data {value}: the weight {text!r} is not a number (write SPEC=WEIGHT, "
                            f"e.g. coco:/data/coco=0.3)") from None
    if not math.isfinite(weight) or weight < 0:
        raise BadInputError(f"--data {value}: the weight must be a finite number, 0 or more, got {text}")
    if not spec:
        raise BadInputError(f"--data {value}: no source before '='; write SPEC=WEIGHT, e.g. mini=0.5")
    return spec, weight


def describe(sources: Sequence[DataSource]) -> str | list[dict]:
    """What train.json records: the spec of a single unweighted source as before, else every source and weight."""
    if len(sources) == 1 and sources[0].weight == 1.0:
        return sources[0].spec
    return [{"source": source.spec, "weight": source.weight} for source in sources]


class MixedExamples:
    """Example ``index`` of source ``source_of(index)``: each source drawn with probability weight / sum."""

    def __init__(self, parts: Sequence, weights: Sequence[float], seed: int = 0):
        """``parts``: one example set per source (indexable by any whole number), ``weights`` theirs."""
        weights = np.asarray(weights, dtype=float)
        if len(parts) != len(weights) or not len(parts):
            raise ValueError("give one weight per source, and at least one source")
        self.parts = list(parts)
        self.shares = weights / weights.sum()
        self.cdf = np.cumsum(self.shares)
        self.cdf[np.flatnonzero(weights)[-1]:] = 1.0  # no rounding can draw a trailing source of weight 0
        self.seed = seed

    def source_of(self, index: int) -> int:
        draw = np.random.default_rng([MIX_SEED_OFFSET, self.seed, index]).random()
        # side="right": a source of weight 0 (a repeated value in the cdf) is never drawn.
        return min(int(np.searchsorted(self.cdf, draw, side="right")), len(self.parts) - 1)

    def __getitem__(self, index: int):
        return self.parts[self.source_of(index)][index]


def build_examples(config, settings, sources: Sequence[DataSource], content=None):
    """The examples of each source (its training split, ``training/sources/``), mixed by weight when there
    are several. ``content``: a SourceContent (or one per source, None where the source is to be read)
    already split."""
    from flexedit_model.training.sources import Recipe, open_examples

    recipe = Recipe.of(config, settings)
    contents = content if isinstance(content, (list, tuple)) else [content] * len(sources)
    if len(contents) != len(sources):
        raise ValueError(f"give one content per source: {len(sources)} sources, {len(contents)} contents")
    parts = [recipe.examples_of(given) if given is not None else open_examples(source.spec, recipe)
             for source, given in zip(sources, contents)]
    if len(parts) == 1:
        return parts[0]  # one source: exactly its examples, as before mixing existed
    return MixedExamples(parts, [source.weight for source in sources], settings.seed)
