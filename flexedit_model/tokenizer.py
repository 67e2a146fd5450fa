"""The VLLM tokenizer: the user's LLaVA tokenizer (paper config) or a byte-level one built offline.

Configs trained from scratch (``tiny``, ``small``) use a byte-level tokenizer: one token per UTF-8 byte,
so it needs no vocabulary file and no download, and any instruction can be encoded. Both kinds get the
special tokens FlexEdit relies on: ``<image>`` (placeholder LLaVA replaces with image patch features)
and the N ``<img_i>`` tokens whose hidden states carry the edit to the Q-Former.
"""

from __future__ import annotations

IMAGE_PLACEHOLDER = "<image>"
PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def image_token_names(count: int) -> list[str]:
    """``["<img_0>", ..., "<img_{count-1}>"]``."""
    return [f"<img_{index}>" for index in range(count)]


def build_byte_tokenizer(num_image_tokens: int):
    """A ``PreTrainedTokenizerFast`` over raw bytes plus FlexEdit's special tokens (offline, deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, padding_side="right"
    )
    add_flexedit_tokens(tokenizer, num_image_tokens)
    return tokenizer


def add_flexedit_tokens(tokenizer, num_image_tokens: int) -> None:
    """Add ``<image>`` (if absent), a pad token (if absent) and the ``<img_i>`` tokens as special tokens."""
    extra = [name for name in [IMAGE_PLACEHOLDER, *image_token_names(num_image_tokens)]
             if name not in tokenizer.get_vocab()]
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra}, replace_extra_special_tokens=False)
