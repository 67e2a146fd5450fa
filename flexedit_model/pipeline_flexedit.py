"""FlexEditPipeline: edit one scene from a free-shape mask, an instruction and (optionally) a subject.

Conventions: scene and subject are RGB uint8 (H, W, 3); mask is bool (H, W), True = the region the
user marked; the result is RGB uint8 at the scene's size. The VLLM, Q-Former and MEA run once per edit
(the VLLM as one forward pass over the prompt and the ``<img_i>`` tokens; its text answer is generated
only with ``return_answer=True``); only the UNet runs once per denoising step. Guidance follows InstructPix2Pix: with text (edit
condition) scale s_T and image (scene) scale s_I,
    eps = eps(null, no scene) + s_I * (eps(null, scene) - eps(null, no scene))
                              + s_T * (eps(c, scene) - eps(null, scene)).
Saved with ``save_pretrained`` as a folder of safetensors files (model, vae, tokenizer, scheduler) that
``FlexEditPipeline.from_pretrained(folder)`` loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DiffusionPipeline

from flexedit_model import latent_codec

# from_pretrained loads the saved components by their module (model_index.json names
# flexedit_model.model and flexedit_model.latent_codec); diffusers only loads from modules already imported.
from flexedit_model import model as _model_module  # noqa: F401
from flexedit_model.model import module_dtype
from flexedit_model.vllm import VllmBatch, build_prompt, clip_pixels, collate_prompts


@dataclass(frozen=True, eq=False)
class FlexEditResult:
    image: np.ndarray  # RGB uint8, the scene's size
    answer: str | None  # the VLLM's text answer, e.g. "The mask means 'dog'"; None unless asked for


class FlexEditPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "model->vae"

    def __init__(self, model, vae, tokenizer, scheduler, resolution: int = 512, max_response_tokens: int = 32,
                 num_inference_steps: int = 50, text_guidance: float = 7.5, image_guidance: float = 1.5,
                 subject_scale: float = 1.0, generate_answer: bool = False):
        super().__init__()
        self.register_modules(model=model, vae=vae, tokenizer=tokenizer, scheduler=scheduler)
        self.register_to_config(resolution=resolution, max_response_tokens=max_response_tokens,
                                num_inference_steps=num_inference_steps, text_guidance=text_guidance,
                                image_guidance=image_guidance, subject_scale=subject_scale,
                                generate_answer=generate_answer)

    @torch.no_grad()
    def __call__(self, scene: np.ndarray, mask: np.ndarray, instruction: str, subject: np.ndarray | None = None,
                 seed: int = 0, num_inference_steps: int | None = None, text_guidance: float | None = None,
                 image_guidance: float | None = None, subject_scale: float | None = None,
                 height: int | None = None, width: int | None = None,
                 return_answer: bool | None = None) -> FlexEditResult:
        """Edit ``scene``. lambda (``subject_scale``) is 0 when no subject is given (single-image edit).

        ``return_answer`` (default: the config's ``generate_answer``) also generates the VLLM's text
        answer (up to ``max_response_tokens``, greedy); it does not change the image.
        """
        # 1. Check the inputs and fill defaults from the pipeline's config.
        config = self.config
        steps = num_inference_steps or config.num_inference_steps
        text_guidance = config.text_guidance if text_guidance is None else text_guidance
        image_guidance = config.image_guidance if image_guidance is None else image_guidance
        subject_scale = (config.subject_scale if subject_scale is None else subject_scale) if subject is not None else 0.0
        return_answer = config.generate_answer if return_answer is None else return_answer
        _check_inputs(scene, mask, subject)
        height, width = height or config.resolution, width or config.resolution
        multiple = latent_codec.spatial_factor(self.vae) * 2 ** (len(self.model.unet.config.block_out_channels) - 1)
        if height % multiple or width % multiple:
            raise ValueError(f"height and width must be multiples of {multiple}, got {height} x {width}")
        # Parts may sit in different dtypes (frozen bases in 16 bits, trained parts in float32): each
        # stage's inputs are cast to the dtype of the module that reads them.
        model = self.model
        device, dtype = model.device, module_dtype(model.unet)

        # 2-3. VLLM, Q-Former and MEA: c = [f1; f2], plus the null condition for guidance.
        condition, answer = self.encode_condition(scene, mask, instruction, subject, return_answer)
        null = model.null_edit_condition(1)

        # 4. The scene latent, concatenated to the noisy latent at every step.
        scene_latents = latent_codec.encode(self.vae, _to_model_pixels(scene, height, width).to(device, self.vae.dtype))
        scene_latents = scene_latents.to(dtype)

        # 5. Timesteps and the seeded initial noise.
        self.scheduler.set_timesteps(steps, device=device)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = torch.randn(scene_latents.shape, generator=generator, dtype=torch.float32).to(device, dtype)
        latents = latents * self.scheduler.init_noise_sigma

        # 6. Denoising loop with text and image guidance.
        guided = text_guidance != 1.0 or image_guidance != 1.0
        if guided:
            conditions = torch.cat([condition, null, null])
            scenes = torch.cat([scene_latents, scene_latents, torch.zeros_like(scene_latents)])
            scales = torch.tensor([subject_scale, 0.0, 0.0], device=device, dtype=dtype)
        else:
            conditions, scenes = condition, scene_latents
            scales = torch.tensor([subject_scale], device=device, dtype=dtype)
        # Known here, so the DCA layers need not read lambda back from the device at every step.
        subject_active = subject_scale != 0
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([latents] * len(conditions))
            model_input = self.scheduler.scale_model_input(model_input, timestep)
            noise = model.predict_noise(model_input, timestep, scenes, conditions, scales, subject_active)
            if guided:
                with_text, with_scene, without = noise.chunk(3)
                noise = (without + image_guidance * (with_scene - without)
                         + text_guidance * (with_text - with_scene))
            latents = self.scheduler.step(noise, timestep, latents).prev_sample

        # 7. Decode, map to uint8 RGB, back to the scene's size.
        decoded = latent_codec.decode(self.vae, latents.to(self.vae.dtype))
        return FlexEditResult(_to_uint8(decoded, scene.shape[:2]), answer)

    @torch.no_grad()
    def encode_condition(self, scene: np.ndarray, mask: np.ndarray, instruction: str,
                         subject: np.ndarray | None = None, return_answer: bool = False):
        """(c (1, Nq [+ Ns], D), text answer or None): what the UNet reads for one edit.

        2. The VLLM reads the marked scene, the subject and the instruction followed by the <img_i>
           tokens, and gives their hidden states (one forward pass); the text answer only if asked.
        3. The Q-Former turns them into e, and the MEA fuses e with the CLIP features of the scene (f1)
           and the subject (f2).
        """
        model = self.model
        token_states, answer = self.vllm_states(scene, mask, instruction, subject, return_answer)
        image_size = model.image_encoder.config.image_size
        scene_clip = clip_pixels([scene], image_size).to(model.device)
        subject_clip = (clip_pixels([subject], image_size).to(model.device)
                        if subject is not None else None)
        return model.edit_condition(token_states, scene_clip, subject_clip), answer

    @torch.no_grad()
    def vllm_states(self, scene: np.ndarray, mask: np.ndarray, instruction: str, subject: np.ndarray | None = None,
                    return_answer: bool = False):
        """(states (1, N, H) of the <img_i> tokens, text answer or None): step 2 of ``encode_condition``.

        The states come from one forward pass over the prompt followed by the <img_i> tokens, the
        positions and context they have in training (see flexedit_model/vllm.py for the order).
        """
        model, tokenizer = self.model, self.tokenizer
        image_tokens = list(model.config.image_token_ids)
        prompt = build_prompt(tokenizer, model.vllm.config, len(image_tokens), scene, mask, instruction, subject, None)
        batch = collate_prompts([prompt], tokenizer.pad_token_id, model.vllm.config.vision_config.image_size)
        batch = VllmBatch(batch.input_ids, batch.attention_mask, batch.labels,
                          batch.pixel_values.to(model.vision_dtype)).to(model.device)
        states, _ = model.image_token_states(batch)
        if not return_answer:
            return states, None
        # The text follows the <img_i> tokens, as in training: generate it from the same context.
        generated = model.vllm.generate(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, pixel_values=batch.pixel_values,
            max_new_tokens=self.config.max_response_tokens, do_sample=False,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )[0, batch.input_ids.shape[1]:].tolist()
        text_ids = [token for token in generated if token not in image_tokens and token != tokenizer.eos_token_id]
        return states, tokenizer.decode(text_ids, skip_special_tokens=True).strip()


def _check_inputs(scene, mask, subject) -> None:
    if not (isinstance(scene, np.ndarray) and scene.dtype == np.uint8 and scene.ndim == 3 and scene.shape[2] == 3):
        raise ValueError("scene must be an RGB uint8 array (H, W, 3)")
    if not (isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == scene.shape[:2]):
        raise ValueError("mask must be a bool array of the scene's (H, W), True = region to edit")
    if subject is not None and not (subject.dtype == np.uint8 and subject.ndim == 3 and subject.shape[2] == 3):
        raise ValueError("subject must be an RGB uint8 array (h, w, 3)")


def _to_model_pixels(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (1, 3, height, width) in [-1, 1], bicubic resize."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    if pixels.shape[-2:] != (height, width):
        pixels = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bicubic",
                                                 align_corners=False, antialias=True)
    return pixels.clamp(-1, 1)


def _to_uint8(decoded: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(1, 3, h, w) in [-1, 1] -> RGB uint8 (H, W, 3) at ``size`` = (H, W)."""
    pixels = decoded.float().clamp(-1, 1)
    if pixels.shape[-2:] != tuple(size):
        pixels = torch.nn.functional.interpolate(pixels, size=size, mode="bicubic", align_corners=False,
                                                 antialias=True).clamp(-1, 1)
    return ((pixels[0].permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).round().astype(np.uint8)
