"""Decoupled cross-attention (DCA) for the UNet, installed with ``set_attn_processor``.

Z' = Attn(Q, K1, V1) + lambda * Attn(Q, K2, V2)   (Eq. 7)
with Q from the UNet features, K1/V1 from f1 through the layer's own ``to_k``/``to_v``, and K2/V2 from
f2 through new ``to_k_subject``/``to_v_subject`` layers. lambda (``subject_scale``) is per example, so a
batch can mix single-image edits (lambda = 0) with multi-image ones. Follows diffusers'
``IPAdapterAttnProcessor2_0``: the conditioning arrives as one tensor, f1 tokens then f2 tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn


class ConditionAttnProcessor(AttnProcessor2_0):
    """Standard attention that accepts (and ignores) ``subject_scale``: self-attention, and cross-attention
    when DCA is switched off, so one ``cross_attention_kwargs`` serves every layer without warnings."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 subject_scale=None, subject_active=None):
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class DecoupledCrossAttnProcessor(nn.Module):
    """Cross-attention over f1 plus a separately projected, lambda-weighted attention over f2."""

    def __init__(self, hidden_size: int, cross_attention_dim: int, num_subject_tokens: int):
        super().__init__()
        self.num_subject_tokens = num_subject_tokens
        self.to_k_subject = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_subject = nn.Linear(cross_attention_dim, hidden_size, bias=False)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 subject_scale=None, subject_active=None):
        """``encoder_hidden_states``: (B, Nq + Ns, D), f1 then f2. ``subject_scale``: float or (B,) tensor.
        ``subject_active``: whether any lambda is non-zero, if known (saves a sync per layer)."""
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        scene_tokens = encoder_hidden_states[:, : -self.num_subject_tokens]
        subject_tokens = encoder_hidden_states[:, -self.num_subject_tokens:]
        if attn.norm_cross:
            scene_tokens = attn.norm_encoder_hidden_states(scene_tokens)

        head_dim = attn.to_q.out_features // attn.heads

        def heads(tensor):
            return tensor.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        query = heads(attn.to_q(hidden_states))
        output = functional.scaled_dot_product_attention(
            query, heads(attn.to_k(scene_tokens)), heads(attn.to_v(scene_tokens))
        )
        scale = _per_example(subject_scale, batch, output)
        # Skipping the branch when every lambda is 0 saves time and keeps single-image edits exactly
        # independent of whatever sits in the subject slots.
        if subject_active is None:
            subject_active = scale is not None and bool(torch.any(scale != 0))
        if scale is not None and subject_active:
            subject_output = functional.scaled_dot_product_attention(
                query, heads(self.to_k_subject(subject_tokens)), heads(self.to_v_subject(subject_tokens))
            )
            output = output + scale * subject_output

        hidden_states = output.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _per_example(subject_scale, batch: int, like: torch.Tensor):
    if subject_scale is None:
        return None
    scale = torch.as_tensor(subject_scale, dtype=like.dtype, device=like.device)
    return scale.expand(batch).view(batch, 1, 1, 1) if scale.ndim == 0 else scale.view(batch, 1, 1, 1)
