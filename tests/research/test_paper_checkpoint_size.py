"""research/flexedit_training/paper_checkpoint_size.py: the trained parameter counts of the paper config at
its real size, built on the meta device, match the counts worked out by hand from the published shapes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SD15_UNET_PARAMETERS = 859_520_964  # runwayml/stable-diffusion-v1-5's UNet


def test_paper_checkpoint_size_counts_what_trains():
    spec = importlib.util.spec_from_file_location(
        "paper_checkpoint_size", ROOT / "research" / "flexedit_training" / "paper_checkpoint_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.paper_parameter_counts()
    trained = counts["trained_parameters"]
    # LoRA r = 8 on q, k, v, o (4096 x 4096) in 32 layers, and 32 new rows of the embedding and the LM head.
    assert trained["vllm (LoRA, <img_i> rows)"] == 32 * 4 * 8 * (4096 + 4096) + 2 * 32 * 4096
    # The UNet: SD 1.5's, 4 more input channels of conv_in (3 x 3 x 320 each), and the DCA projections.
    assert trained["unet"] > SD15_UNET_PARAMETERS + 4 * 320 * 9
    assert trained["null_condition"] == 77 * 768
    assert counts["trained_bytes_float32"] == 4 * counts["trained_parameters_total"]
    # LLaVA-1.5-7B (7.06 G) and CLIP ViT-L/14's vision tower (0.30 G) are referenced, not trained.
    assert 7.3e9 < counts["frozen_parameters_referenced"] < 7.45e9
    assert counts["vae_parameters_referenced"] == 83_653_863  # SD 1.5's AutoencoderKL
