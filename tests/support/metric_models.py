"""Tiny, randomly initialised models of the real classes the metrics use, written to local files.

Shared by the metric and scoring tests: an open_clip CLIP from a tiny registered config, a tiny
transformers ``CLIPModel`` in the hub folder layout of openai/clip-vit-large-patch14 (with OpenAI's real
BPE vocabulary, from the file open_clip ships), a tiny transformers ``Dinov2Model`` folder, and LPIPS
files (the package's own linear layers plus a random torchvision backbone checkpoint). Nothing is
downloaded.
"""

import json
from pathlib import Path

import torch

TINY_CLIP = "fsmi-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "patch_size": 32, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_clip(folder: Path) -> Path:
    """Register the tiny config with open_clip and save random weights; returns the weights file."""
    import open_clip

    config_path = Path(folder) / f"{TINY_CLIP}.json"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP)
    weights = Path(folder) / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return weights


def write_tiny_dinov2(folder: Path, preprocessor_config: bool = True) -> Path:
    """A tiny random ``Dinov2Model`` folder, with the hub's ``preprocessor_config.json`` of facebook/dinov2-small
    unless ``preprocessor_config`` is False (a folder saved from the model alone)."""
    from transformers import Dinov2Config, Dinov2Model

    from fsmi_bench.metrics.dino_metric import DINOV2_PREPROCESSOR_CONFIG

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=224)
    model = Dinov2Model(config)
    target = Path(folder) / ("tiny-dinov2" if preprocessor_config else "tiny-dinov2-model-only")
    model.save_pretrained(target)
    if preprocessor_config:
        (target / "preprocessor_config.json").write_text(json.dumps(DINOV2_PREPROCESSOR_CONFIG, indent=2))
    return target


def write_lpips_files(folder: Path, net: str) -> tuple[Path, Path]:
    """(linear layers file, backbone checkpoint): the package's real linear layers, a random backbone."""
    import lpips
    import torchvision

    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    torch.manual_seed(1)
    backbone = getattr(torchvision.models, {"alex": "alexnet", "squeeze": "squeezenet1_1"}[net])(weights=None)
    path = Path(folder) / f"{net}-backbone.pth"
    torch.save(backbone.state_dict(), path)
    return linear, path


# What the Hugging Face folder of openai/clip-vit-large-patch14 holds beside its weights (the hub's own
# files, which SmartEdit's evaluator reads through `CLIPProcessor.from_pretrained`).
CLIP_HUB_PREPROCESSOR_CONFIG = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
}
CLIP_HUB_TOKENIZER_CONFIG = {
    "unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>", "add_prefix_space": False, "errors": "replace", "do_lower_case": True,
    "model_max_length": 77, "tokenizer_class": "CLIPTokenizer",
}


def write_clip_bpe_vocabulary(folder: Path) -> None:
    """``vocab.json`` and ``merges.txt`` of OpenAI's CLIP (49,408 tokens), built from the BPE file that
    ships inside open_clip, as the hub's openai/clip-* folders hold them; works offline."""
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as packaged:
        merges = packaged.read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [token + "</w>" for token in vocab] + ["".join(merge.split()) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def write_tiny_hf_clip(folder: Path) -> Path:
    """A tiny random ``CLIPModel`` in the layout of the hub's openai/clip-vit-large-patch14 folder (config,
    safetensors weights, preprocessor config, tokenizer files), under ``folder/openai/clip-vit-large-patch14``
    (the name torchmetrics' CLIPScore checks for "openai"). Returns that folder."""
    from transformers import CLIPConfig, CLIPModel

    target = Path(folder) / "openai" / "clip-vit-large-patch14"
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "vocab_size": 49408},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
        projection_dim=16)
    CLIPModel(config).eval().save_pretrained(target)
    write_clip_bpe_vocabulary(target)
    (target / "preprocessor_config.json").write_text(json.dumps(CLIP_HUB_PREPROCESSOR_CONFIG, indent=2))
    (target / "tokenizer_config.json").write_text(json.dumps(CLIP_HUB_TOKENIZER_CONFIG, indent=2))
    (target / "special_tokens_map.json").write_text(json.dumps(
        {key: CLIP_HUB_TOKENIZER_CONFIG[key] for key in ("unk_token", "bos_token", "eos_token", "pad_token")}))
    return target


def transformers4_clip(folder: Path):
    """(model, processor) of a Hugging Face CLIP folder as torchmetrics' ``CLIPScore`` gets them from
    transformers 4.28.1, the version SmartEdit pins: ``get_image_features`` and ``get_text_features``
    return the projected tensor (transformers 5 returns an output object holding it in ``pooler_output``,
    which torchmetrics cannot read), and the image processor is the PIL-based one (transformers 5
    defaults to a torchvision backend). Written here apart from fsmi's own loader."""
    import transformers
    from transformers import CLIPModel, CLIPProcessor

    def tensor(output):
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    class CLIPModelOfTransformers4(CLIPModel):
        def get_image_features(self, *args, **kwargs):
            return tensor(super().get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return tensor(super().get_text_features(*args, **kwargs))

    model = CLIPModelOfTransformers4.from_pretrained(str(folder)).eval()
    if int(transformers.__version__.split(".")[0]) >= 5:
        processor = CLIPProcessor.from_pretrained(str(folder), backend="pil")
    else:
        processor = CLIPProcessor.from_pretrained(str(folder), use_fast=False)
    return model, processor
