"""The FlexEdit training objective: L = L_diffusion + w * L_VLLM (Eq. 5; w = ``language_loss_weight``, 1 in the
paper).

L_diffusion is the MSE of Eq. 4 (on epsilon, or on v / x0 as the config's scheduler says) with the scene
latent concatenated to the noisy target latent; L_VLLM is the language model's cross-entropy on its answer
(Eq. 2). As in InstructPix2Pix, the edit condition and the scene latent are each dropped for a fraction of
examples so that the pipeline's text and image guidance have unconditional predictions to work with.
Training computes it through ``step.TrainingObjective``, the module accelerate prepares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flexedit_model import latent_codec
from flexedit_model.vllm import VllmBatch, build_prompt, clip_pixels, collate_prompts


@dataclass(frozen=True, eq=False)
class TrainingBatch:
    vllm: VllmBatch
    scene_pixels: torch.Tensor  # (B, 3, R, R) in [-1, 1]
    target_pixels: torch.Tensor  # (B, 3, R, R) in [-1, 1]
    scene_clip: torch.Tensor  # (B, 3, S, S) CLIP-normalised
    subject_clip: torch.Tensor  # (B, 3, S, S); the scene stands in where there is no subject
    has_subject: torch.Tensor  # (B,) bool
    regions: torch.Tensor  # (B, R, R) float, 1 inside the true region (object mask / edit region)
    # (B,) float: 1 for rows with an image target, 0 for conversations (VQA), which train the language loss only
    diffusion_rows: torch.Tensor | None = None
    language_targets: bool = True  # whether any row has answer tokens to learn (else no language loss)
    kinds: tuple[str, ...] = ()  # "<source kind>/<task>" of each row, for loss.csv

    def to(self, device) -> "TrainingBatch":
        rows = None if self.diffusion_rows is None else self.diffusion_rows.to(device)
        return TrainingBatch(self.vllm.to(device), *(tensor.to(device) for tensor in (
            self.scene_pixels, self.target_pixels, self.scene_clip, self.subject_clip, self.has_subject,
            self.regions)), rows, self.language_targets, self.kinds)


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    diffusion: torch.Tensor
    language: torch.Tensor
    layout: torch.Tensor  # 0 without a layout read-out


def images_to_pixels(images: list[np.ndarray]) -> torch.Tensor:
    """(B, 3, H, W) float32 in [-1, 1] (what the VAE encodes) from B uint8 (H, W, 3) RGB images of one size."""
    return torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images]
                       ).float() / 127.5 - 1.0


@dataclass(frozen=True)
class CollateSpec:
    """What batching needs to know of the model (plain configs, so data-loader workers need no model)."""

    llava_config: object  # transformers LlavaConfig
    num_image_tokens: int
    clip_image_size: int

    @classmethod
    def from_model(cls, model) -> "CollateSpec":
        return cls(model.vllm.config, len(model.config.image_token_ids), model.image_encoder.config.image_size)


def collate_examples(examples, tokenizer, model) -> TrainingBatch:
    """Tensors for a list of ``TrainingExample`` (all of one resolution). ``model``: a FlexEditModel or
    its ``CollateSpec``."""
    spec = model if isinstance(model, CollateSpec) else CollateSpec.from_model(model)
    from flexedit_model.training.sources.llava import conversation_prompt

    llava_config = spec.llava_config
    # Edit pairs without a label (MagicBrush, InstructPix2Pix) get no text to say: label None.
    prompts = [conversation_prompt(tokenizer, llava_config, spec.num_image_tokens, example) if example.task == "vqa"
               else build_prompt(tokenizer, llava_config, spec.num_image_tokens, example.scene, example.mask,
                                 example.instruction, example.subject, example.label or None)
               for example in examples]
    vllm = collate_prompts(prompts, tokenizer.pad_token_id, llava_config.vision_config.image_size)
    size = spec.clip_image_size
    return TrainingBatch(
        vllm=vllm,
        scene_pixels=images_to_pixels([example.scene for example in examples]),
        target_pixels=images_to_pixels([example.target for example in examples]),
        scene_clip=clip_pixels([example.scene for example in examples], size),
        subject_clip=clip_pixels([example.subject if example.subject is not None else example.scene
                                  for example in examples], size),
        has_subject=torch.tensor([example.subject is not None for example in examples]),
        regions=torch.from_numpy(np.stack([example.region for example in examples]).astype(np.float32)),
        diffusion_rows=torch.tensor([float(example.task != "vqa") for example in examples]),
        language_targets=bool((vllm.labels != -100).any()),
        kinds=tuple(f"{getattr(example, 'source_kind', '') or 'data'}/{example.task}" for example in examples),
    )


def diffusion_target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor,
                     timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict, by the scheduler's ``prediction_type``: the noise (epsilon), the
    velocity sqrt(a_t) eps - sqrt(1 - a_t) x0 (v_prediction) or the clean latent (sample)."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise ValueError(f"unknown prediction_type {kind!r}")


def sample_timesteps(count: int, size: int, generator: torch.Generator, high_noise_bias: float = 1.0) -> torch.Tensor:
    """Training timesteps in [0, count): t / count = 1 - u ** high_noise_bias, u uniform.

    1 is uniform. Above 1, noisier steps come more often (2: 71% in the noisier half): where the image
    is mostly noise the UNet must take the layout (where the object goes) from the condition, so those
    steps carry the signal that teaches it to read the mask.
    """
    if high_noise_bias == 1.0:
        return torch.randint(0, count, (size,), generator=generator, device=generator.device)
    draw = torch.rand(size, generator=generator, device=generator.device)
    return ((1.0 - draw ** high_noise_bias) * count).long().clamp_(0, count - 1)


def flexedit_loss(model, vae, noise_scheduler, batch: TrainingBatch, generator: torch.Generator,
                  condition_dropout: float = 0.05, language_loss_weight: float = 1.0,
                  subject_scale: float = 1.0, high_noise_bias: float = 1.0,
                  layout_loss_weight: float = 0.0) -> LossParts:
    """One forward pass of every network and the combined loss. Noise, timesteps and dropout come from
    ``generator``, so a step is reproducible; a generator on the batch's device draws them there (on a
    GPU that saves drawing the noise on the CPU, 6.3 M numbers at batch 128 for ``small``, and copying
    it over at every step).

    ``layout_loss_weight`` > 0 (a model built with a layout read-out) adds w * BCE(layout read from e, the
    region's share of each cell of a G x G grid): it keeps the place of the mask in e while the UNet
    cannot yet use it. Trained from scratch, the Q-Former otherwise learns to shut out its input, since
    a place the UNet does not read is only noise to it, and then the UNet never gets a place to learn
    to read (``flexedit_model.evaluation.mask_sensitivity`` measures this as ``mask_moved_qformer_e``)."""
    device = batch.scene_pixels.device
    size = batch.scene_pixels.shape[0]
    dtype = next(model.unet.parameters()).dtype
    # A batch of unlabelled edit pairs has no answer token: no language loss (a mean over none is NaN).
    states, language_loss = model.image_token_states(batch.vllm, with_language_loss=batch.language_targets)
    if language_loss is None:
        language_loss = torch.zeros((), device=device)
    # Rows with an image target; conversations (VQA) train the language loss only. Every row still runs
    # through the UNet, so that all trained parameters get a gradient on every process.
    rows = batch.diffusion_rows if batch.diffusion_rows is not None else torch.ones(size, device=device)
    rows = rows.to(device=device, dtype=torch.float32)
    row_share = rows / rows.sum().clamp(min=1.0)
    edit_embeddings = model.qformer(states)
    condition = model.condition_from_embeddings(edit_embeddings, batch.scene_clip.to(dtype),
                                                batch.subject_clip.to(dtype), batch.has_subject)
    layout = torch.zeros((), device=device)
    if layout_loss_weight > 0:
        logits = model.layout_logits(edit_embeddings).float()
        share = torch.nn.functional.adaptive_avg_pool2d(batch.regions[:, None].float(), logits.shape[-1])[:, 0]
        per_row = torch.nn.functional.binary_cross_entropy_with_logits(logits, share, reduction="none")
        layout = (per_row.flatten(1).mean(dim=1) * row_share).sum()
    with torch.no_grad():
        target_latents = latent_codec.encode(vae, batch.target_pixels.to(vae.dtype)).to(dtype)
        scene_latents = latent_codec.encode(vae, batch.scene_pixels.to(vae.dtype)).to(dtype)
    noise = torch.randn(target_latents.shape, generator=generator, device=generator.device).to(device, dtype)
    timesteps = sample_timesteps(noise_scheduler.config.num_train_timesteps, size, generator,
                                 high_noise_bias).to(device)
    noisy = noise_scheduler.add_noise(target_latents, noise, timesteps)
    # InstructPix2Pix's dropout: p drop the condition only, p the scene only, p both.
    draw = torch.rand(size, generator=generator, device=generator.device).to(device)
    drop_condition = draw < 2 * condition_dropout
    drop_scene = (draw >= condition_dropout) & (draw < 3 * condition_dropout)
    condition = torch.where(drop_condition.view(-1, 1, 1), model.null_edit_condition(size).to(condition.dtype),
                            condition)
    scene_latents = scene_latents * (~drop_scene).view(-1, 1, 1, 1).to(dtype)
    with_subject = batch.has_subject & ~drop_condition
    scale = subject_scale * with_subject.to(dtype)
    # One host sync per step instead of one per DCA layer.
    predicted = model.predict_noise(noisy, timesteps, scene_latents, condition, scale,
                                    subject_active=subject_scale != 0 and bool(with_subject.any()))
    per_row = torch.nn.functional.mse_loss(predicted.float(), diffusion_target(
        noise_scheduler, target_latents, noise, timesteps).float(), reduction="none")
    diffusion = (per_row.flatten(1).mean(dim=1) * row_share).sum()
    total = diffusion + language_loss_weight * language_loss.float() + layout_loss_weight * layout
    return LossParts(total, diffusion.detach(), language_loss.detach().float(), layout.detach())
