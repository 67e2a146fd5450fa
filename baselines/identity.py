"""``identity``: returns the scene unchanged.

The smallest complete method, and the floor of every table: its background scores are perfect for
single-image cases and its foreground scores show what "no edit" is worth.
"""

from __future__ import annotations

import numpy as np

from fsmi_bench.run.method import EditRequest, Method


class Identity(Method):
    """Returns a copy of the scene (RGB uint8, the scene's size). Needs no weights; ignores mask and seed."""

    name = "identity"

    def edit(self, request: EditRequest) -> np.ndarray:
        return request.scene.copy()
