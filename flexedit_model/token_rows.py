"""Train only the rows of FlexEdit's new tokens in a pretrained LLaVA's embedding and output matrices.

The ``<img_i>`` tokens are new to LLaVA, so their rows of ``embed_tokens`` and ``lm_head`` must be learned;
the 32,000 rows of the pretrained vocabulary stay as shipped. Training whole matrices (2 x 131 M
parameters for LLaVA-7B) would cost AdamW state and a changed base to save; here each matrix is wrapped:
the pretrained weight stays frozen (in the frozen dtype), the new rows are a separate float32 parameter
(``new_rows``), and only they are trained and saved. Token ids past the pretrained matrix (its rows are
padded to a multiple of 64 in llava-hf, so usually there are none) extend the vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn


def _row_lookup(token_ids: list[int], vocabulary: int) -> torch.Tensor:
    """(vocabulary,) long: the index into ``new_rows`` of each token id, -1 for pretrained rows."""
    lookup = torch.full((vocabulary,), -1, dtype=torch.long)
    lookup[torch.as_tensor(token_ids, dtype=torch.long)] = torch.arange(len(token_ids))
    return lookup


class NewRowsEmbedding(nn.Module):
    """An input embedding whose rows at ``token_ids`` come from the trained ``new_rows``."""

    def __init__(self, pretrained: nn.Embedding, token_ids: list[int]):
        super().__init__()
        self.pretrained = pretrained
        self.token_ids = list(token_ids)
        self.num_embeddings = max(pretrained.num_embeddings, max(self.token_ids) + 1)
        self.embedding_dim = pretrained.embedding_dim
        # New tokens start as the mean pretrained embedding (a common choice when adding tokens).
        start = pretrained.weight.detach().float().mean(dim=0, keepdim=True)
        self.new_rows = nn.Parameter(start.repeat(len(self.token_ids), 1))
        self.register_buffer("row_of_token", _row_lookup(self.token_ids, self.num_embeddings), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        """The pretrained weight (what transformers reads for the dtype and device of embeddings)."""
        return self.pretrained.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pretrained_ids = input_ids.clamp(max=self.pretrained.num_embeddings - 1)
        embedded = self.pretrained(pretrained_ids)
        row = self.row_of_token[input_ids]
        new = self.new_rows[row.clamp(min=0)].to(embedded.dtype)
        return torch.where((row >= 0).unsqueeze(-1), new, embedded)


class NewRowsOutput(nn.Module):
    """An output projection (``lm_head``) whose logits at ``token_ids`` come from the trained ``new_rows``."""

    def __init__(self, pretrained: nn.Linear, token_ids: list[int]):
        super().__init__()
        if pretrained.bias is not None:
            raise ValueError("an output projection with a bias is not supported")
        self.pretrained = pretrained
        self.token_ids = list(token_ids)
        self.out_features = max(pretrained.out_features, max(self.token_ids) + 1)
        self.in_features = pretrained.in_features
        start = pretrained.weight.detach().float().mean(dim=0, keepdim=True)
        self.new_rows = nn.Parameter(start.repeat(len(self.token_ids), 1))
        self.register_buffer("token_index", torch.as_tensor(self.token_ids, dtype=torch.long), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.pretrained.weight

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        logits = self.pretrained(hidden_states)
        extra = self.out_features - self.pretrained.out_features
        if extra:
            logits = torch.cat([logits, logits.new_full((*logits.shape[:-1], extra), torch.finfo(logits.dtype).min)], -1)
        new = nn.functional.linear(hidden_states, self.new_rows.to(hidden_states.dtype))
        return logits.index_copy(-1, self.token_index, new.to(logits.dtype))


def train_new_rows_only(llava, token_ids: list[int]) -> None:
    """Wrap ``llava``'s input embedding and ``lm_head`` so that only the rows of ``token_ids`` train; in place.

    The vocabulary grows to cover the ids (``text_config.vocab_size``, read by the language loss)."""
    if llava.config.tie_word_embeddings or getattr(llava.config.text_config, "tie_word_embeddings", False):
        raise ValueError("LLaVA with tied input and output embeddings is not supported")
    embedding = NewRowsEmbedding(llava.get_input_embeddings(), token_ids)
    output = NewRowsOutput(llava.get_output_embeddings(), token_ids)
    llava.set_input_embeddings(embedding)
    llava.set_output_embeddings(output)
    llava.config.text_config.vocab_size = embedding.num_embeddings
