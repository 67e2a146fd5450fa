"""Ready-made edit cases as training pairs: ``--data fsmi:PATH`` (the FSMI folder format of
``fsmi_bench/benchmark/sources/FORMATS.md``, read case by case when drawn) and ``--data hf:PATH`` folders
holding an exported benchmark.

Each example: the case's scene, its ground truth as the target, a ``random_walk`` free-shape mask inside
its edit region, its instruction and subject (multi-image cases); the VLLM says "The mask means
'<label>'" with the case's label. Cases split into train / held-out by the sha256 of their ``case_id``
(``fsmi_bench_split``, as objects do), so an evaluation on the held-out cases sees none of them in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError


class CaseExamples:
    """Example ``i``: case ``rng.integers(count)`` of ``read(number)`` -> ``PreparedCase``."""

    def __init__(self, name: str, count: int, read, resolution: int, seed: int = 0, source_kind: str = "fsmi"):
        self.name, self.count, self.read = name, count, read
        self.resolution, self.seed, self.source_kind = resolution, seed, source_kind

    def __getitem__(self, index: int):
        from flexedit_model.training.data import (
            TRAINING_SEED_OFFSET,
            TrainingExample,
            _random_walk,
            _square,
            _square_mask,
        )

        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        case = self.read(int(rng.integers(self.count)))
        size = self.resolution
        region = _square_mask(case.region, size)
        if not region.any():  # a small region can vanish at a toy resolution: keep its centre
            rows, columns = np.nonzero(case.region)
            height, width = case.region.shape
            region[int(rows.mean() * size / height), int(columns.mean() * size / width)] = True
        mask = _random_walk(region, int(rng.integers(2**31)))
        return TrainingExample(f"edit_{index:06d}", "edit", case.kind, _square(case.scene, size),
                               _square(case.gt, size), mask, region, case.instruction, case.label, case.subject,
                               (f"{self.source_kind}:{case.case_id}",), self.source_kind)


def train_cases_message(spec: str, total: int) -> str:
    return (f"--data {spec}: none of its {total} edit case(s) is in the training split (case ids are split by "
            "their sha256, a quarter held out); add cases, or give this folder to `fsmi build` for evaluation")


def open_fsmi(path: str, recipe) -> CaseExamples:
    """The training-split cases of an FSMI folder, each read (and checked) when an example draws it."""
    from flexedit_model.training.data import fsmi_bench_split
    from fsmi_bench.benchmark.sources.fsmi_folder import case_entries, read_case

    root = Path(path)
    entries = case_entries(root)
    ids = [str(entry[0].get("case_id")) if isinstance(entry[0], dict) else "" for entry in entries]
    if len(set(ids)) != len(ids):
        duplicate = next(case_id for case_id in ids if ids.count(case_id) > 1)
        raise BadInputError(f"{root}: case_id {duplicate!r} appears twice")
    chosen = [entry for entry, case_id in sorted(zip(entries, ids), key=lambda pair: pair[1])
              if fsmi_bench_split(case_id) == "train"]
    if not chosen:
        raise BadInputError(train_cases_message(f"fsmi:{path}", len(entries)))
    return CaseExamples(f"fsmi:{root}", len(chosen), lambda number: read_case(root, chosen[number]),
                        recipe.resolution, recipe.seed, "fsmi")


def case_examples(content, spec: str, recipe) -> CaseExamples:
    """The training-split cases of loaded content (an exported benchmark in an ``hf:`` folder)."""
    from flexedit_model.training.data import fsmi_bench_split

    cases = [case for case in content.cases if fsmi_bench_split(case.case_id) == "train"]
    if not cases:
        raise BadInputError(train_cases_message(spec, len(content.cases)))
    return CaseExamples(content.name, len(cases), cases.__getitem__, recipe.resolution, recipe.seed,
                        spec.partition(":")[0])
