"""``--data mini`` and ``--data hf:PATH``: sources ``fsmi build`` reads, loaded whole (they are small: the
embedded photos, a ``datasets`` folder of segmentation rows or an exported benchmark).

Objects (mini, segmentation rows) train both tasks of ``TrainingExamples`` on their training split; an
exported benchmark's cases train as edit pairs (``cases.case_examples``).
"""

from __future__ import annotations

from fsmi_bench.errors import BadInputError


def examples_of_content(content, spec: str, recipe):
    """The examples of loaded, not yet split ``content``: its objects' two tasks, or its cases as edit pairs."""
    from flexedit_model.training.data import split_content
    from flexedit_model.training.sources.cases import case_examples

    if not content.objects and content.cases:
        return case_examples(content, spec, recipe)
    try:
        part = split_content(content, "train")
    except ValueError:
        raise BadInputError(f"--data {spec}: no objects in the training split ({len(content.objects)} in all, "
                            "a quarter held out by the sha256 of their ids), so no mask or edit examples") from None
    return recipe.examples_of(part)


def open_loaded(path: str, recipe, kind: str):
    from fsmi_bench.benchmark.sources import load_source

    spec = f"{kind}:{path}" if path else kind
    return examples_of_content(load_source(spec), spec, recipe)


def open_mini(path: str, recipe):
    return open_loaded(path, recipe, "mini")


def open_hf(path: str, recipe):
    return open_loaded(path, recipe, "hf")
