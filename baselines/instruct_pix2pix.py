"""InstructPix2Pix (Brooks et al., 2023) through diffusers' StableDiffusionInstructPix2PixPipeline.

The method takes the scene and the instruction only: **the mask is ignored**, as in the paper's
comparison (it reports InstructPix2Pix as published, with no mask). Its output is therefore the same
for every mask condition of a case (same seed). The subject image of multi-image cases is ignored too.
Sizes: the scene goes in at the working size (long side ``working_long_side``, multiple of 8) and the
output is resized back to the scene's size. See baselines/diffusers_common.py for weights and options.
"""

from __future__ import annotations

from baselines.diffusers_common import DiffusersMethod, to_pil_rgb


class InstructPix2Pix(DiffusersMethod):
    """Config: weights | model_id (default timbrooks/instruct-pix2pix), num_inference_steps (100),
    guidance_scale (text, 7.5), image_guidance_scale (1.5), torch_dtype, cpu_offload, working_long_side."""

    name = "instruct-pix2pix"
    pipeline_class_name = "StableDiffusionInstructPix2PixPipeline"
    default_model_id = "timbrooks/instruct-pix2pix"
    extra_config_keys = ("image_guidance_scale",)
    # 100 steps: the pipeline's own default and the setting of the InstructPix2Pix paper
    config_defaults = {"num_inference_steps": 100}

    def run_pipeline(self, request, scene, mask, size, generator):
        result = self.pipeline(
            prompt=request.instruction,
            image=to_pil_rgb(scene),
            num_inference_steps=self.options.num_inference_steps,
            guidance_scale=self.options.guidance_scale,
            image_guidance_scale=float(self.config.get("image_guidance_scale", 1.5)),
            generator=generator,
        )
        return result.images[0]
