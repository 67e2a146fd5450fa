"""Stable Diffusion inpainting through diffusers' StableDiffusionInpaintPipeline.

Mask: the free-shape (or full) mask is the inpainting mask as given (True -> white = repaint);
everything outside it is regenerated through the VAE only, as the pipeline does.
Prompt: the inpainting model is prompted with a description of what should fill the mask, not
an instruction, so by default the prompt is the class label (``prompt_template`` "{label}"); for
``remove`` cases it is ``remove_prompt`` ("empty background"). ``prompt_template`` may use
{label} and {instruction}. The subject image of multi-image cases is not used (text only).
Sizes: working size (multiple of 8) in, output resized back to the scene's size.
"""

from __future__ import annotations

from baselines.diffusers_common import DiffusersMethod, to_pil_mask, to_pil_rgb


class SdInpaint(DiffusersMethod):
    """Config: weights | model_id (default stable-diffusion-v1-5/stable-diffusion-inpainting),
    num_inference_steps (50), guidance_scale (7.5), prompt_template ("{label}"), remove_prompt,
    negative_prompt (""), torch_dtype, cpu_offload, working_long_side."""

    name = "sd-inpaint"
    pipeline_class_name = "StableDiffusionInpaintPipeline"
    default_model_id = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    extra_config_keys = ("prompt_template", "remove_prompt", "negative_prompt")

    def prompt_for(self, request) -> str:
        if request.op == "remove":
            return str(self.config.get("remove_prompt", "empty background"))
        template = str(self.config.get("prompt_template", "{label}"))
        return template.format(label=request.label, instruction=request.instruction)

    def run_pipeline(self, request, scene, mask, size, generator):
        height, width = size
        result = self.pipeline(
            prompt=self.prompt_for(request),
            negative_prompt=str(self.config.get("negative_prompt", "")) or None,
            image=to_pil_rgb(scene),
            mask_image=to_pil_mask(mask),
            height=height,
            width=width,
            strength=1.0,
            num_inference_steps=self.options.num_inference_steps,
            guidance_scale=self.options.guidance_scale,
            generator=generator,
        )
        return result.images[0]
