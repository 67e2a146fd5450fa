"""Paint-by-Example (Yang et al., 2023) through diffusers' PaintByExamplePipeline.

Inputs: the scene, the mask as the inpainting mask (True -> white = repaint) and the case's
subject image as the exemplar. The instruction is not used (the method has no text input).
Single-image cases have no subject: the edit raises BadInputError, which the run engine records
as a failed case (the paper compares Paint-by-Example on multi-image cases only); run it with
``--kinds multi``. Sizes: working size (multiple of 8) in, output resized back to the scene's size;
the exemplar is resized by the pipeline's own CLIP image processor (224 px).
The safety checker is never loaded (a blacked-out output would be scored as an edit).
"""

from __future__ import annotations

import json

from baselines.diffusers_common import (
    DiffusersMethod,
    place_pipeline,
    resolve_dtype,
    resolve_weights,
    to_pil_mask,
    to_pil_rgb,
)
from fsmi_bench.errors import BadInputError, MissingWeightsError


class PaintByExample(DiffusersMethod):
    """Config: weights | model_id (default Fantasy-Studio/Paint-by-Example), num_inference_steps (50),
    guidance_scale (5.0), torch_dtype, cpu_offload, working_long_side."""

    name = "paint-by-example"
    pipeline_class_name = "PaintByExamplePipeline"
    default_model_id = "Fantasy-Studio/Paint-by-Example"

    def __init__(self, config: dict | None = None, device: str = "cpu"):
        config = dict(config or {})
        config.setdefault("guidance_scale", 5.0)  # the pipeline's and the paper's default
        super().__init__(config, device)

    def setup(self) -> None:
        if self.pipeline is not None:
            return
        self._weights_path = resolve_weights(self.options, self.name)
        self.pipeline = place_pipeline(self._load_components(self._weights_path), self.options, self.device)

    def _load_components(self, path):
        # The folder's model_index.json names the image encoder's library "paint_by_example" (hub) or
        # "diffusers" (save_pretrained); recent diffusers moved that class under pipelines.deprecated and
        # resolves neither, so each component is loaded from its subfolder and the pipeline built here.
        import diffusers
        import transformers

        try:
            from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
        except ImportError:  # diffusers before the move
            from diffusers.pipelines.paint_by_example import PaintByExampleImageEncoder
        dtype = resolve_dtype(self.options.torch_dtype, self.device)
        index = json.loads((path / "model_index.json").read_text())
        scheduler_class = getattr(diffusers, index.get("scheduler", [None, "PNDMScheduler"])[1])
        try:
            return diffusers.PaintByExamplePipeline(
                vae=diffusers.AutoencoderKL.from_pretrained(path / "vae", torch_dtype=dtype),
                image_encoder=PaintByExampleImageEncoder.from_pretrained(path / "image_encoder", torch_dtype=dtype),
                unet=diffusers.UNet2DConditionModel.from_pretrained(path / "unet", torch_dtype=dtype),
                scheduler=scheduler_class.from_pretrained(path / "scheduler"),
                safety_checker=None,
                feature_extractor=transformers.CLIPImageProcessor.from_pretrained(path / "feature_extractor"),
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as error:
            raise MissingWeightsError(f"paint-by-example: cannot load the pipeline from {path}: {error}") from None

    def edit(self, request):
        if request.subject is None:
            raise BadInputError(
                f"paint-by-example needs a subject image; case {request.case_id or '?'} is a single-image case "
                "(run with --kinds multi)"
            )
        return super().edit(request)

    def run_pipeline(self, request, scene, mask, size, generator):
        result = self.pipeline(
            example_image=to_pil_rgb(request.subject),
            image=to_pil_rgb(scene),
            mask_image=to_pil_mask(mask),
            height=size[0],
            width=size[1],
            num_inference_steps=self.options.num_inference_steps,
            guidance_scale=self.options.guidance_scale,
            generator=generator,
        )
        return result.images[0]
