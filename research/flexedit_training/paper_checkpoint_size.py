"""The size of a ``paper`` checkpoint at the real scale, computed (not measured) from parameter counts.

Builds the paper config's networks at their real sizes on PyTorch's ``meta`` device (shapes only, no
memory, no weights needed): LLaVA-1.5-7B as ``llava-hf`` ships it, CLIP ViT-L/14, the SD 1.5 UNet widened to
8 input channels and the VAE; wraps them in FlexEditModel as ``build_components`` does; counts the
parameters that train (kept in float32) and the frozen ones. Prints one JSON line:

    python research/flexedit_training/paper_checkpoint_size.py

``trained_bytes`` is what the pipeline's ``model/`` safetensors hold; a ``state-<step>/`` folder holds about
3x that (the weights and AdamW's two moments, float32). The frozen bases are referenced, not copied.
"""

from __future__ import annotations

import json


def paper_parameter_counts() -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, LlavaConfig, LlavaForConditionalGeneration

    from flexedit_model.checkpoint_formats import LLAMA_VOCAB, SD15_UNET, SD15_VAE, llava_shipped_config
    from flexedit_model.config import load_config
    from flexedit_model.model import FlexEditModel
    from flexedit_model.qformer import qformer_config
    from flexedit_model.training.loop import set_trainable

    config = load_config("paper")
    llava = llava_shipped_config("real")
    # <image> and <pad> follow the base vocabulary; the <img_i> tokens follow them (add_flexedit_tokens).
    first = LLAMA_VOCAB["real"] + 2
    image_tokens = list(range(first, first + config.num_image_tokens))
    llm_width = llava["text_config"].get("hidden_size", 4096)  # Llama-7B's default, not written in the config
    adapter = config.adapter
    with torch.device("meta"):
        vllm = LlavaForConditionalGeneration(LlavaConfig.from_dict(llava))
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=768, hidden_act="quick_gelu"))
        unet = UNet2DConditionModel(**{**SD15_UNET, "in_channels": 8})
        vae = AutoencoderKL(**SD15_VAE)
        model = FlexEditModel.from_parts(
            vllm, encoder, unet, new_token_rows_only=True, image_token_ids=image_tokens,
            qformer_config=qformer_config(config.qformer, llm_width).to_dict(),
            num_query_tokens=config.qformer["num_query_tokens"], num_subject_tokens=adapter["num_subject_tokens"],
            adapter_heads=adapter["num_heads"], use_ca=adapter["use_ca"], use_dca=adapter["use_dca"],
            lora_rank=config.vllm["lora_rank"], lora_alpha=config.vllm["lora_alpha"])
    set_trainable(model, config)
    trained: dict[str, int] = {}
    frozen = 0
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            part = name.split(".", 1)[0]
            part = "vllm (LoRA, <img_i> rows)" if part == "vllm" else part
            trained[part] = trained.get(part, 0) + parameter.numel()
        else:
            frozen += parameter.numel()
    vae_parameters = sum(parameter.numel() for parameter in vae.parameters())
    total = sum(trained.values())
    return {"computed_from": "parameter counts of the real sizes on the meta device; not a measured file size",
            "trained_parameters": trained, "trained_parameters_total": total,
            "trained_bytes_float32": 4 * total, "state_bytes_about": 12 * total,
            "frozen_parameters_referenced": frozen, "vae_parameters_referenced": vae_parameters,
            "vae_bytes_float32_not_copied": 4 * vae_parameters}


if __name__ == "__main__":
    print(json.dumps(paper_parameter_counts()))
