"""The ``flexedit`` method for the run engine: ``fsmi run --method flexedit --weights DIR``.

DIR is a saved FlexEditPipeline (``pipeline/`` of a ``fsmi train flexedit`` output, or that output
folder itself). Options (``--config FILE``): num_inference_steps, text_guidance, image_guidance,
subject_scale (lambda for multi-image cases; single-image cases always use 0), height, width.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.run.method import EditRequest, Method

WEIGHTS_ENV = "FSMI_FLEXEDIT_WEIGHTS"
TRAIN_HINT = ("train one with `fsmi train flexedit --config small --data mini --out runs/flexedit-small` "
              "and pass `--weights runs/flexedit-small/pipeline`, or set " + WEIGHTS_ENV)
OPTIONS = ("num_inference_steps", "text_guidance", "image_guidance", "subject_scale", "height", "width")


def resolve_weights(configured: str | None) -> Path:
    """The pipeline folder to load, or MissingWeightsError saying how to get one."""
    configured = configured or os.environ.get(WEIGHTS_ENV)
    if not configured:
        raise MissingWeightsError(f"flexedit needs a trained FlexEdit checkpoint: {TRAIN_HINT}")
    path = Path(configured).expanduser()
    if (path / "pipeline" / "model_index.json").is_file():
        path = path / "pipeline"
    if not (path / "model_index.json").is_file():
        raise MissingWeightsError(f"no FlexEdit checkpoint at {path} (model_index.json is missing): {TRAIN_HINT}")
    return path


class FlexEditMethod(Method):
    name = "flexedit"

    def setup(self) -> None:
        import torch

        from flexedit_model.pipeline_flexedit import FlexEditPipeline

        self.weights_path = resolve_weights(self.config.get("weights"))
        self.pipeline = FlexEditPipeline.from_pretrained(self.weights_path).to(torch.device(self.device))
        self.pipeline.set_progress_bar_config(disable=True)
        self.options = {key: self.config[key] for key in OPTIONS if self.config.get(key) is not None}

    def edit(self, request: EditRequest) -> np.ndarray:
        # Only multi-image cases pass the subject, so a single-image edit has lambda = 0 and no subject.
        subject = request.subject if request.kind == "multi" else None
        result = self.pipeline(request.scene, request.mask, request.instruction, subject=subject,
                               seed=request.seed, **self.options)
        return result.image

    def weights(self) -> dict[str, str]:
        return {"flexedit": str(self.weights_path)} if hasattr(self, "weights_path") else {}

    def close(self) -> None:
        self.pipeline = None
