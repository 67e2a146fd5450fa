"""Edit instructions from templates, filled with class labels.

The label of the object the edit is about is kept apart as the CLIP-T text (``clip_text``); for
``remove`` the text is "background", what the region should show after the edit.
"""

from __future__ import annotations

import numpy as np

TEMPLATES = {
    ("single", "add"): ("add a {new} in the marked area", "put a {new} where I drew", "place a {new} here"),
    ("single", "replace"): ("replace the {old} with a {new}", "turn the marked {old} into a {new}",
                            "swap the {old} in the marked area for a {new}"),
    ("single", "remove"): ("remove the {old} in the marked area", "take away the marked {old}",
                           "erase the {old} I marked"),
    ("multi", "add"): ("add the {new} from the second image in the marked area",
                       "put the {new} of the reference image where I drew",
                       "place the {new} shown in the second image here"),
    ("multi", "replace"): ("replace the {old} with the {new} from the second image",
                           "swap the marked {old} for the {new} in the reference image",
                           "turn the {old} I marked into the {new} of the second image"),
}

REMOVE_CLIP_TEXT = "background"


def article_free(label: str) -> str:
    return label.replace("_", " ")


def make_instruction(kind: str, op: str, rng: np.random.Generator, new: str | None, old: str | None) -> str:
    templates = TEMPLATES[(kind, op)]
    template = templates[int(rng.integers(len(templates)))]
    return template.format(new=article_free(new or ""), old=article_free(old or ""))
