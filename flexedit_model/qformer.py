"""The Q-Former (transformers ``Blip2QFormerModel``): ``<img_i>`` hidden states -> embeddings e.

Learned query tokens cross-attend to the VLLM's hidden states at the N ``<img_i>`` positions, which
live in the language model's space; a linear layer maps the result to the UNet's cross-attention width,
the space the diffusion model was trained to read (Sec. 3.1, e = Q(H)).

Weights start at std ``hidden_size ** -0.5`` (the config's ``initializer_range`` overrides it), so each
layer keeps its input's scale. BLIP-2's 0.02 shrinks the cross-attention branch against the residual
stream of learned queries: a from-scratch Q-Former then outputs nearly the same e for any <img_i>
states (``cpu-check``: e moved by 0.4% when the mask moved, the states by 9%), and the mask never
reaches the UNet.
"""

from __future__ import annotations

import torch
from torch import nn


def qformer_config(section: dict, encoder_hidden_size: int):
    from transformers import Blip2QFormerConfig

    return Blip2QFormerConfig(
        hidden_size=section["hidden_size"], num_hidden_layers=section["num_hidden_layers"],
        num_attention_heads=section["num_attention_heads"], intermediate_size=section["intermediate_size"],
        encoder_hidden_size=encoder_hidden_size, cross_attention_frequency=1,
        initializer_range=section.get("initializer_range", section["hidden_size"] ** -0.5),
    )


class QFormerBridge(nn.Module):
    """(B, N, H_llm) image-token states -> e: (B, num_query_tokens, out_dim)."""

    def __init__(self, config_dict: dict, num_query_tokens: int, out_dim: int):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        config = Blip2QFormerConfig(**config_dict)
        self.qformer = Blip2QFormerModel(config)
        self.query_tokens = nn.Parameter(torch.randn(1, num_query_tokens, config.hidden_size) * 0.02)
        self.to_condition = nn.Linear(config.hidden_size, out_dim)

    def forward(self, image_token_states: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(image_token_states.shape[0], -1, -1)
        output = self.qformer(query_embeds=queries, encoder_hidden_states=image_token_states)
        return self.to_condition(output.last_hidden_state)
