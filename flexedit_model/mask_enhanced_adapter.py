"""The Mask Enhanced Adapter (MEA, Sec. 3.2): e + scene and subject CLIP features -> f1, f2.

- CA (Eq. 6): e (the edit intent from the Q-Former) is the query, CLIP token features of the scene are keys
  and values: f1 = e + Attn(e W_q1, LN(x1) W_k1, LN(x1) W_v1), with ``num_heads`` heads. Eq. 6 has neither
  the residual nor the LayerNorm; both follow IP-Adapter-Plus's resampler (ip_adapter/resampler.py:
  ``PerceiverAttention`` normalises the image features it attends over, ``Resampler`` adds the attention to
  its queries). The residual keeps the instruction's content in f1: an object to add is not in the scene,
  so attention over scene features alone could not carry it. The LayerNorm: the token features are
  transformers' ``last_hidden_state``, taken before CLIP's own final LayerNorm (``post_layernorm`` normalises
  the pooled token only), so they reach the keys unnormalised. With ``use_ca=False`` (ablation, Sec. 4.3,
  Table 3) the CA module does not exist and f1 = e.
- f2: a linear layer over the subject's CLIP image embedding, reshaped into ``num_subject_tokens`` tokens
  and normalised (IP-Adapter's ``ImageProjModel``). It exists in every variant: the DCA ablation
  (``use_dca=False``, Sec. 4.3, Table 4) changes how the UNet reads f2 (flexedit_model/model.py), not
  whether it gets it.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class MaskEnhancedAdapter(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, condition_dim: int, scene_feature_dim: int, subject_embed_dim: int,
                 num_subject_tokens: int = 4, num_heads: int = 8, use_ca: bool = True):
        super().__init__()
        if use_ca:
            self.scene_attention = nn.MultiheadAttention(
                condition_dim, num_heads, kdim=scene_feature_dim, vdim=scene_feature_dim, batch_first=True
            )
            self.scene_norm = nn.LayerNorm(scene_feature_dim)
        self.subject_projection = nn.Linear(subject_embed_dim, num_subject_tokens * condition_dim)
        self.subject_norm = nn.LayerNorm(condition_dim)

    def scene_features(self, edit_embeddings: torch.Tensor, scene_clip_features: torch.Tensor) -> torch.Tensor:
        """f1 (B, Nq, D) from e (B, Nq, D) and scene CLIP token features (B, P, D_clip)."""
        if not self.config.use_ca:
            return edit_embeddings
        keys = self.scene_norm(scene_clip_features)
        attended, _ = self.scene_attention(edit_embeddings, keys, keys, need_weights=False)
        return edit_embeddings + attended

    def subject_features(self, subject_clip_embeds: torch.Tensor) -> torch.Tensor:
        """f2 (B, Ns, D) from the subject's CLIP image embedding (B, D_embed)."""
        tokens = self.subject_projection(subject_clip_embeds)
        return self.subject_norm(tokens.view(tokens.shape[0], self.config.num_subject_tokens, -1))
