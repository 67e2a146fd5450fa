"""Randomly initialised checkpoints in the on-disk formats of the three models the ``paper`` config reads.

- ``write_sd15_folder``: a Stable Diffusion 1.5 diffusers folder (``model_index.json``, ``unet/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``), the config keys and class names of
  ``runwayml/stable-diffusion-v1-5``; safetensors in float32 as that folder ships them.
- ``write_llava_folder``: a llava-hf LLaVA-1.5 folder as shipped (``config.json`` of
  ``LlavaForConditionalGeneration`` with the partial ``text_config``/``vision_config`` of
  ``llava-hf/llava-1.5-7b-hf``, float16 safetensors in shards with an index, under the shipped key names
  ``language_model.model.*`` / ``vision_tower.vision_model.*``), and a Llama-style tokenizer
  (``tokenizer.json`` built offline with ``tokenizers``; ``<image>`` = the first id after the base
  vocabulary, ``<pad>`` the next, as in the shipped one).
- ``write_clip_vision_folder``: CLIP ViT-L/14 in Hugging Face format, either a whole ``CLIPModel`` folder
  (``openai/clip-vit-large-patch14``) or a ``CLIPVisionModelWithProjection`` one (IP-Adapter's
  ``image_encoder/``).

``size="real"`` writes the real widths and depths (for the GPU benchmark); ``"tiny"`` writes the same
formats at toy widths with 2 layers (tests). The weights are random: never a model to report figures with.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SIZES = ("tiny", "real")

# The base vocabulary of LLaVA-1.5's Llama tokenizer, and its embedding rows (padded to a multiple of 64).
LLAMA_VOCAB = {"real": 32000, "tiny": 384}


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --- Stable Diffusion 1.5 ------------------------------------------------------------------------------

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
SD15_TINY_UNET = dict(SD15_UNET, block_out_channels=[32, 64], layers_per_block=1, cross_attention_dim=32,
                      down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                      up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=4, sample_size=8)
SD15_TINY_VAE = dict(SD15_VAE, down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                     block_out_channels=[32, 32], layers_per_block=1, sample_size=32)


def write_sd15_folder(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A Stable Diffusion 1.5 diffusers folder at ``path`` (random weights); returns ``path``."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    _check_size(size)
    path = Path(path)
    torch.manual_seed(seed)
    real = size == "real"
    UNet2DConditionModel(**(SD15_UNET if real else SD15_TINY_UNET)).save_pretrained(path / "unet")
    AutoencoderKL(**(SD15_VAE if real else SD15_TINY_VAE)).save_pretrained(path / "vae")
    text = CLIPTextConfig(vocab_size=49408, hidden_size=768 if real else 32, intermediate_size=3072 if real else 64,
                          num_hidden_layers=12 if real else 2, num_attention_heads=12 if real else 4,
                          max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768 if real else 32)
    CLIPTextModel(text).save_pretrained(path / "text_encoder")
    _write_clip_tokenizer(path / "tokenizer")
    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                  set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1
                  ).save_pretrained(path / "scheduler")
    # The safety checker of the shipped folder is left out (null), as many copies of SD 1.5 have it.
    _write_json(path / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    return path


def _write_clip_tokenizer(folder: Path) -> None:
    """CLIP's tokenizer files (vocab.json, merges.txt) with the byte alphabet only: no merges learned."""
    from tokenizers import pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    vocab.update({symbol + "</w>": len(alphabet) + index for index, symbol in enumerate(alphabet)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    _write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "do_lower_case": True})
    _write_json(folder / "special_tokens_map.json", {
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>"})


# --- LLaVA-1.5 (llava-hf) --------------------------------------------------------------------------------

def llava_shipped_config(size: str = "real") -> dict:
    """``config.json`` of ``llava-hf/llava-1.5-7b-hf``: text and vision configs give only what differs from
    the defaults (Llama-7B, CLIP ViT-L/14-336). ``"tiny"`` adds toy widths and 2 layers to each."""
    _check_size(size)
    vocab = LLAMA_VOCAB[size]
    padded = -(-(vocab + 2) // 64) * 64
    text = {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
            "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
            "torch_dtype": "float16", "vocab_size": padded}
    vision = {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
              "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768,
              "vocab_size": 32000}
    if size == "tiny":
        text.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=4)
        vision.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      image_size=28, patch_size=14)
    return {"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": vocab,
            "model_type": "llava", "pad_token_id": vocab + 1, "projector_hidden_act": "gelu",
            "text_config": text, "tie_word_embeddings": False, "torch_dtype": "float16",
            "transformers_version": "4.36.0.dev0", "vision_config": vision, "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default", "vocab_size": padded}


def llava_shipped_key(key: str) -> str:
    """The name a ``LlavaForConditionalGeneration`` state-dict key has in the shipped llava-hf files."""
    for current, shipped in (("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head."),
                             ("model.vision_tower.", "vision_tower.vision_model."),
                             ("model.multi_modal_projector.", "multi_modal_projector.")):
        if key.startswith(current):
            return shipped + key[len(current):]
    raise ValueError(f"unexpected LLaVA key {key!r}")


def write_llava_folder(path: str | Path, size: str = "tiny", seed: int = 0, shard_bytes: int | None = None) -> Path:
    """A llava-hf LLaVA-1.5 folder at ``path`` (random float16 weights, shipped key names and shards)."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    _check_size(size)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shipped = llava_shipped_config(size)
    torch.manual_seed(seed)
    with torch.device("cuda" if size == "real" and torch.cuda.is_available() else "cpu"):
        model = LlavaForConditionalGeneration(LlavaConfig.from_dict(shipped)).to(torch.float16)
    state = {llava_shipped_key(key): tensor.detach().cpu().contiguous() for key, tensor in model.state_dict().items()}
    del model
    # llava-1.5-7b-hf ships 3 shards; a tiny folder gets 2, so that loading through the index is exercised.
    total = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    split = split_torch_state_dict_into_shards(state, filename_pattern="model{suffix}.safetensors",
                                               max_shard_size=shard_bytes or max(1, total // 2 + 1))
    for filename, keys in split.filename_to_tensors.items():
        save_file({key: state[key] for key in keys}, str(path / filename), metadata={"format": "pt"})
    if split.is_sharded:
        _write_json(path / "model.safetensors.index.json",
                    {"metadata": {"total_size": total}, "weight_map": split.tensor_to_filename})
    _write_json(path / "config.json", shipped)
    _write_json(path / "generation_config.json", {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                                                  "pad_token_id": shipped["pad_token_id"]})
    _write_llama_tokenizer(path, LLAMA_VOCAB[size])
    image_size = shipped["vision_config"]["image_size"]
    _write_json(path / "preprocessor_config.json", {
        "crop_size": {"height": image_size, "width": image_size}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": image_size}})
    return path


def _write_llama_tokenizer(folder: Path, vocab_size: int) -> None:
    """A Llama (SentencePiece-style BPE with byte fallback) ``tokenizer.json``: ``<unk>``, ``<s>``, ``</s>``,
    the 256 byte tokens, then word pieces up to ``vocab_size``; ``<image>`` and ``<pad>`` added after it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{value:02X}>" for value in range(256)]
    letters = "▁etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789'.,:<>_"
    pieces += [letter for letter in letters if letter not in pieces]
    merges = []
    words = ("▁t", "he", "▁the", "▁a", "in", "▁m", "as", "ask", "▁mask", "▁me", "an", "ans", "▁means")
    for word in words:
        for split in range(1, len(word)):
            left, right = word[:split], word[split:]
            if left in pieces and right in pieces and word not in pieces:
                merges.append((left, right))
                pieces.append(word)
                break
    pieces += [f"▁w{index}" for index in range(vocab_size - len(pieces))]
    if len(pieces) != vocab_size:
        raise ValueError(f"vocabulary of {vocab_size} is too small for the base pieces ({len(pieces)})")
    vocab = {piece: index for index, piece in enumerate(pieces)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                                     fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True)
                                  for token in ("<unk>", "<s>", "</s>")])
    tokenizer.add_tokens([AddedToken("<image>", normalized=False, special=True)])
    tokenizer.add_special_tokens([AddedToken("<pad>", normalized=False, special=True)])
    tokenizer.save(str(folder / "tokenizer.json"))
    added = {str(index): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": True}
             for index, token in ((0, "<unk>"), (1, "<s>"), (2, "</s>"), (vocab_size, "<image>"),
                                  (vocab_size + 1, "<pad>"))}
    _write_json(folder / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added, "bos_token": "<s>",
        "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False, "model_max_length": 1000000,
        "pad_token": "<pad>", "padding_side": "left", "processor_class": "LlavaProcessor",
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False})
    _write_json(folder / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                                                     "unk_token": "<unk>"})
    _write_json(folder / "added_tokens.json", {"<image>": vocab_size, "<pad>": vocab_size + 1})


# --- CLIP ViT-L/14 ---------------------------------------------------------------------------------------

CLIP_LAYOUTS = ("clip_model", "vision_with_projection")


def write_clip_vision_folder(path: str | Path, size: str = "tiny", seed: int = 0, layout: str = "clip_model") -> Path:
    """CLIP ViT-L/14 at ``path``: a whole ``CLIPModel`` folder (``openai/clip-vit-large-patch14``) or a
    ``CLIPVisionModelWithProjection`` one (IP-Adapter's ``image_encoder/``); float32 safetensors."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    _check_size(size)
    if layout not in CLIP_LAYOUTS:
        raise ValueError(f"layout must be one of {CLIP_LAYOUTS}, got {layout!r}")
    real = size == "real"
    vision = dict(hidden_size=1024 if real else 32, intermediate_size=4096 if real else 64,
                  num_hidden_layers=24 if real else 2, num_attention_heads=16 if real else 4,
                  image_size=224 if real else 28, patch_size=14, projection_dim=768 if real else 16,
                  hidden_act="quick_gelu", layer_norm_eps=1e-5)
    torch.manual_seed(seed)
    if layout == "vision_with_projection":
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    else:
        text = dict(hidden_size=768 if real else 32, intermediate_size=3072 if real else 64,
                    num_hidden_layers=12 if real else 2, num_attention_heads=12 if real else 4,
                    max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu",
                    projection_dim=vision["projection_dim"])
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=vision["projection_dim"]))
    model.save_pretrained(Path(path))
    return Path(path)
