"""Tiny, randomly initialised models of the real classes the metrics use, written to local files.

Shared by the metric and scoring tests: an open_clip CLIP from a tiny registered config, a tiny
transformers ``Dinov2Model`` folder, and LPIPS files (the package's own linear layers plus a random
torchvision backbone checkpoint). Nothing is downloaded.
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


def write_tiny_dinov2(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=224)
    model = Dinov2Model(config)
    target = Path(folder) / "tiny-dinov2"
    model.save_pretrained(target)
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
