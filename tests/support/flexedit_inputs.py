"""Toy inputs for the FlexEdit tests, and the ``paper`` config on stand-ins of the user's weights in their
exact on-disk formats (flexedit_model/checkpoint_formats.py: SD 1.5 diffusers folder, llava-hf LLaVA-1.5
in float16 as shipped, CLIP ViT-L/14)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

# The settings research/flexedit_training/gpu_flexedit_paper.py trains with, paper.json's untouched: the tests that
# train the ``paper`` config on the stand-ins keep them (only its size and batch are made to fit a CPU).
GPU_SETTINGS = ("mixed_precision", "gradient_checkpointing", "gradient_accumulation_steps")


def toy_edit(height: int = 40, width: int = 48, seed: int = 0):
    """(scene RGB uint8, free-shape mask bool, subject RGB uint8) with a textured scene."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[10:24, 12:30] = True
    subject = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)
    return scene, mask, subject


def write_paper_weights(root: Path) -> dict[str, Path]:
    """Tiny stand-ins of the three folders the ``paper`` config reads, under ``root``."""
    from flexedit_model.checkpoint_formats import write_clip_vision_folder, write_llava_folder, write_sd15_folder

    return {"sd": write_sd15_folder(root / "stable-diffusion-v1-5"),
            "llava": write_llava_folder(root / "llava-1.5-7b-hf"),
            "clip": write_clip_vision_folder(root / "clip-vit-large-patch14")}


def paper_config(weights: dict[str, Path], training: dict | None = None, **llava):
    """The paper config on the stand-ins, at a size that runs on a CPU (the sections' structure kept).

    The training section is paper.json's with batch 2 and 1 step, then ``training`` (None: gradient
    checkpointing off, for the tests that do not train through the loop)."""
    from flexedit_model.config import load_config

    paper = load_config("paper")
    changes = {"gradient_checkpointing": False} if training is None else training
    return dataclasses.replace(
        paper, resolution=32, num_image_tokens=4,
        vllm={**paper.vllm, "path": str(weights["llava"]), **llava},
        image_encoder={**paper.image_encoder, "path": str(weights["clip"])},
        unet={**paper.unet, "path": str(weights["sd"])}, vae={**paper.vae, "path": str(weights["sd"])},
        qformer={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64,
                 "num_query_tokens": 4},
        adapter={**paper.adapter, "num_heads": 4}, inference={**paper.inference, "num_inference_steps": 2},
        training={**paper.training, "batch_size": 2, "steps": 1, **changes})
