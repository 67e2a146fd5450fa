"""FlexEditModel: every trainable FlexEdit network in one diffusers ``ModelMixin``/``ConfigMixin``.

    VLLM (LLaVA + LoRA) --<img_i> states--> Q-Former --e--> MEA (CA over scene CLIP features -> f1;
    linear over subject CLIP embedding -> f2) --[f1; f2]--> UNet with DCA (8 input channels)

The config stores the full architecture of each part (LLaVA, Q-Former, CLIP vision, UNet configs as
dicts) and the ablation switches, so ``from_pretrained`` rebuilds exactly what was saved, never guessing
from checkpoint keys. The ablations of Sec. 4.3: ``use_ca=False`` builds the MEA without its CA (f1 = e);
``use_dca=False`` keeps f2 and replaces DCA with the UNet's own cross-attention over [f1; f2] as one
sequence ("a general cross attention"), with no second key/value projections and no lambda weighting.

Pretrained parts (the user's LLaVA, CLIP and UNet) enter through ``FlexEditModel.from_parts``: the model
is built around those very modules, never rebuilt from their configs. A model built so carries
``base_references`` (path and sha256 of each frozen base); ``save_pretrained`` then writes only what
training changes and references the bases (``flexedit_model.checkpoint``), and ``from_pretrained`` loads
such a folder back around the same bases.
"""

from __future__ import annotations

import contextvars
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from flexedit_model.mask_enhanced_adapter import MaskEnhancedAdapter
from flexedit_model.qformer import QFormerBridge
from flexedit_model.token_rows import train_new_rows_only
from flexedit_model.unet import install_attention_processors
from flexedit_model.vllm import VllmBatch, gather_image_token_states, inject_lora

# The modules ``from_parts`` hands to the constructor. ``register_to_config`` records every constructor
# argument in config.json (and drops private ones), so loaded modules cannot be constructor arguments.
_ADOPTED_PARTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("flexedit_adopted_parts", default=None)


def json_clean_config(config) -> dict:
    """A model config as plain JSON values: private keys (``_name_or_path``, ``_class_name``, ...) dropped,
    tuples as lists, paths as text."""
    def clean(value):
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return {key: clean(value) for key, value in dict(config).items() if not str(key).startswith("_")}


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first floating parameter (the frozen base's, for a wrapped base)."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


class FlexEditModel(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, vllm_config: dict, qformer_config: dict, image_encoder_config: dict, unet_config: dict,
                 image_token_ids: list, num_query_tokens: int = 16, num_subject_tokens: int = 4,
                 adapter_heads: int = 8, use_ca: bool = True, use_dca: bool = True, lora_rank: int = 0,
                 lora_alpha: int = 0, layout_grid: int = 0, new_token_rows_only: bool = False):
        super().__init__()
        from diffusers import UNet2DConditionModel
        from transformers import (
            CLIPVisionConfig,
            CLIPVisionModelWithProjection,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        parts = _ADOPTED_PARTS.get() or {}
        # Built in this order so that a seeded random model is the same as before parts could be given.
        self.vllm = parts.get("vllm") or LlavaForConditionalGeneration(LlavaConfig.from_dict(vllm_config))
        if new_token_rows_only:
            train_new_rows_only(self.vllm, list(image_token_ids))
        if lora_rank:
            inject_lora(self.vllm, lora_rank, lora_alpha)
        self.image_encoder = parts.get("image_encoder") or CLIPVisionModelWithProjection(
            CLIPVisionConfig.from_dict(image_encoder_config))
        self.unet = parts.get("unet") or UNet2DConditionModel(**unet_config)
        condition_dim = self.unet.config.cross_attention_dim
        self.qformer = QFormerBridge(qformer_config, num_query_tokens, condition_dim)
        self.adapter = MaskEnhancedAdapter(
            condition_dim, self.image_encoder.config.hidden_size, self.image_encoder.config.projection_dim,
            num_subject_tokens=num_subject_tokens, num_heads=adapter_heads, use_ca=use_ca,
        )
        install_attention_processors(self.unet, num_subject_tokens, use_dca)
        # Training aid (``training.layout_loss_weight``): a linear read-out of the region's coarse layout
        # from e. Unused at inference.
        if layout_grid:
            self.layout_head = nn.Linear(num_query_tokens * condition_dim, layout_grid * layout_grid)
        # The "no instruction" condition for classifier-free guidance and condition dropout (as the
        # empty prompt's embedding in InstructPix2Pix), learned.
        self.null_condition = nn.Parameter(torch.zeros(1, num_query_tokens, condition_dim))
        # Frozen bases this model references instead of saving ({} for models trained from scratch).
        self.base_references: dict = {}

    @classmethod
    def from_parts(cls, vllm, image_encoder, unet, *, qformer_config: dict, image_token_ids: list,
                   **settings) -> "FlexEditModel":
        """A FlexEditModel built around the given modules (the very objects, not copies): ``vllm`` a
        ``LlavaForConditionalGeneration``, ``image_encoder`` a ``CLIPVisionModelWithProjection``, ``unet`` a
        ``UNet2DConditionModel`` already widened to take the scene latent. ``settings``: the other
        constructor arguments (num_query_tokens, lora_rank, ...). Their configs are recorded as JSON."""
        token = _ADOPTED_PARTS.set({"vllm": vllm, "image_encoder": image_encoder, "unet": unet})
        try:
            return cls(vllm_config=json_clean_config(vllm.config.to_dict()), qformer_config=qformer_config,
                       image_encoder_config=json_clean_config(image_encoder.config.to_dict()),
                       unet_config=json_clean_config(unet.config), image_token_ids=list(image_token_ids),
                       **settings)
        finally:
            _ADOPTED_PARTS.reset(token)

    # --- saving and loading -----------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, **kwargs):
        """Compact (trained tensors + references to the bases) when the model has ``base_references``;
        otherwise every weight, as diffusers saves a model."""
        if not self.base_references:
            return super().save_pretrained(save_directory, *args, **kwargs)
        from flexedit_model.checkpoint import save_compact

        if kwargs.get("is_main_process", True):
            save_compact(self, Path(save_directory), kwargs.get("max_shard_size", "5GB"))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a saved model: a compact folder (with ``base_weights.json``) around its verified bases, or a
        full one through diffusers. ``torch_dtype`` sets the dtype of the frozen bases of a compact folder."""
        from flexedit_model.checkpoint import BASES_FILE, load_compact

        folder = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
        if not (folder / BASES_FILE).is_file():
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        return load_compact(cls, folder, kwargs.get("torch_dtype"))

    # --- stage 1: VLLM -------------------------------------------------------------------------
    def image_token_states(self, batch: VllmBatch, with_language_loss: bool = False):
        """(states (B, N, H_llm) at the <img_i> positions, language loss or None)."""
        output = self.vllm(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask,
            pixel_values=batch.pixel_values.to(self.vision_dtype),
            labels=batch.labels if with_language_loss else None, output_hidden_states=True, use_cache=False,
            # Without a loss no logits are needed: keep one position instead of L x vocabulary.
            logits_to_keep=0 if with_language_loss else 1,
        )
        states = gather_image_token_states(output.hidden_states[-1], batch.input_ids,
                                           list(self.config.image_token_ids))
        return states, (output.loss if with_language_loss else None)

    # --- stage 2: Q-Former and MEA -------------------------------------------------------------
    def edit_condition(self, image_token_states: torch.Tensor, scene_clip_pixels: torch.Tensor,
                       subject_clip_pixels: torch.Tensor | None, has_subject: torch.Tensor | None = None):
        """The UNet's cross-attention input c = [f1; f2]: (B, Nq [+ Ns], D).

        scene_clip_pixels, subject_clip_pixels: (B, 3, S, S) CLIP-normalised. ``has_subject`` (B,) bool
        zeroes f2 for rows without a subject (their lambda is 0 anyway).
        """
        return self.condition_from_embeddings(self.qformer(image_token_states.to(module_dtype(self.qformer))),
                                              scene_clip_pixels, subject_clip_pixels, has_subject)

    @property
    def vision_dtype(self) -> torch.dtype:
        """The dtype LLaVA's vision tower takes its pixels in."""
        return module_dtype(self.vllm.model.vision_tower)

    def condition_from_embeddings(self, edit_embeddings: torch.Tensor, scene_clip_pixels: torch.Tensor,
                                  subject_clip_pixels: torch.Tensor | None, has_subject: torch.Tensor | None = None):
        """The MEA part of ``edit_condition``, from the Q-Former's e (B, Nq, D)."""
        batch = edit_embeddings.shape[0]
        with_subject = subject_clip_pixels is not None
        # Scene and subject go through the CLIP encoder in one call (one pass, not two).
        pixels = torch.cat([scene_clip_pixels, subject_clip_pixels]) if with_subject else scene_clip_pixels
        encoded = self.image_encoder(pixel_values=pixels.to(module_dtype(self.image_encoder)))
        # The adapter trains (float32) while CLIP may be kept frozen in 16 bits: meet in the adapter's dtype.
        has_parameters = any(True for _ in self.adapter.parameters())
        adapter_dtype = module_dtype(self.adapter) if has_parameters else edit_embeddings.dtype
        edit_embeddings = edit_embeddings.to(adapter_dtype)
        scene_features = self.adapter.scene_features(
            edit_embeddings, encoded.last_hidden_state[:batch].to(adapter_dtype))
        if not with_subject:
            subject_features = scene_features.new_zeros(batch, self.config.num_subject_tokens,
                                                        scene_features.shape[-1])
        else:
            subject_features = self.adapter.subject_features(encoded.image_embeds[batch:].to(adapter_dtype))
            if has_subject is not None:
                subject_features = subject_features * has_subject.view(batch, 1, 1).to(subject_features.dtype)
        return torch.cat([scene_features, subject_features], dim=1)

    def layout_logits(self, edit_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, G, G) logits of the region's layout read from e (models built with ``layout_grid``)."""
        grid = self.config.layout_grid
        return self.layout_head(edit_embeddings.flatten(1)).view(-1, grid, grid)

    def null_edit_condition(self, batch: int) -> torch.Tensor:
        """The unconditional c for guidance: learned null f1, zero f2."""
        null = self.null_condition.expand(batch, -1, -1)
        return torch.cat([null, null.new_zeros(batch, self.config.num_subject_tokens, null.shape[-1])], dim=1)

    # --- stage 3: UNet ---------------------------------------------------------------------------
    def predict_noise(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, scene_latents: torch.Tensor,
                      condition: torch.Tensor, subject_scale, subject_active: bool | None = None) -> torch.Tensor:
        """epsilon(t, concat[z_t, E(x1)], c), Eq. 4. ``subject_scale`` is lambda: a float or a (B,) tensor.

        ``subject_active``: whether any lambda is non-zero, when the caller knows it; otherwise each DCA
        layer checks the tensor itself (a device-to-host sync per layer on GPU).
        """
        dtype = module_dtype(self.unet)
        unet_input = torch.cat([noisy_latents, scene_latents], dim=1).to(dtype)
        if not self.config.use_dca:
            condition, keep = self._general_cross_attention_inputs(condition, subject_scale, subject_active)
            return self.unet(unet_input, timesteps, encoder_hidden_states=condition.to(dtype),
                             encoder_attention_mask=keep).sample
        return self.unet(unet_input, timesteps, encoder_hidden_states=condition.to(dtype),
                         cross_attention_kwargs={"subject_scale": subject_scale,
                                                 "subject_active": subject_active}).sample

    def _general_cross_attention_inputs(self, condition: torch.Tensor, subject_scale, subject_active):
        """The DCA ablation's UNet inputs: (c, the mask of the tokens each row attends to, or None).

        The general cross-attention has no lambda: a row with lambda = 0 (a single-image edit, an
        unconditional row of guidance) attends to f1 only; any other row to f1 and f2."""
        subject_tokens = self.config.num_subject_tokens
        if subject_active is False:
            return condition[:, :-subject_tokens], None
        batch = condition.shape[0]
        scale = torch.as_tensor(subject_scale, device=condition.device).expand(batch)
        keep = torch.ones(condition.shape[:2], device=condition.device)
        keep[:, -subject_tokens:] = (scale != 0).to(keep.dtype).view(batch, 1)
        return condition, keep

    def use_gradient_checkpointing(self) -> None:
        """Recompute the UNet's and LLaVA's block activations in the backward pass instead of keeping them.

        Non-reentrant checkpointing (``use_reentrant=False``) in both, as DDP needs when it looks for unused
        parameters (training/loop.py): the reentrant kind runs a checkpointed block's forward outside autograd,
        so DDP finds the block's parameters unused and marks them ready, and their gradients then arrive a
        second time ("Expected to mark a variable ready only once"). diffusers' default is the non-reentrant kind."""
        self.unet.enable_gradient_checkpointing()
        kwargs = {"use_reentrant": False}
        # transformers 5 renames gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable.
        if hasattr(self.vllm, "activation_checkpointing_enable"):
            self.vllm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.vllm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
