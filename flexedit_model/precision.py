"""The dtype each frozen base (LLaVA under LoRA, CLIP, the VAE) is kept in: a section's ``dtype``, read with
the run's ``training.mixed_precision``.

At inference (no training precision), ``"auto"`` keeps the weights as stored on a GPU (llava-hf ships
float16) and in float32 on the CPU, where 16-bit products are slow; each stage casts its inputs to the
dtype of the module that reads them.

In training, frozen weights are kept in the dtype the run computes in, as diffusers' training examples
keep their frozen VAE and text encoder in ``weight_dtype`` (``examples/instruct_pix2pix/
train_instruct_pix2pix.py``: float16 under fp16, bfloat16 under bf16, else float32). ``"auto"`` is that
dtype, and a 16-bit dtype autocast does not compute in is refused before any model loads: under bf16
autocast a float16 weight meets bfloat16 activations, and CPU and CUDA autocast stop at the first op that
mixes them ("Unexpected floating ScalarType in at::autocast::prioritize", in LLaVA's vision embeddings).
float32 frozen weights are always accepted (autocast casts them per op).
"""

from __future__ import annotations

import torch

from fsmi_bench.errors import BadInputError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# The dtype a run computes in for each ``training.mixed_precision``: accelerate's autocast dtype (its fp8
# runs the ops it does not take to FP8 under bf16 autocast: accelerate.utils.get_mixed_precision_context_manager).
COMPUTE_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}
_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


def frozen_dtype(choice: str | None, device, mixed_precision: str | None = None,
                 key: str = "dtype") -> torch.dtype | None:
    """The dtype frozen base weights are kept in (None = as stored), or a one-line BadInputError naming ``key``.

    ``choice``: ``"auto"`` (or None), ``"bf16"``, ``"fp16"`` or ``"fp32"``. ``mixed_precision``: the training
    run's ``training.mixed_precision``, or None outside training (see the module docstring)."""
    choice = choice or "auto"
    if choice != "auto" and choice not in DTYPES:
        raise BadInputError(f"{key} must be one of auto, {', '.join(DTYPES)}, got {choice!r}")
    cpu = torch.device(device).type == "cpu"
    if mixed_precision is None:
        if choice == "auto":
            return torch.float32 if cpu else None
        dtype = DTYPES[choice]
    else:
        compute = COMPUTE_DTYPES[mixed_precision]
        dtype = compute if choice == "auto" else DTYPES[choice]
        if dtype not in (torch.float32, compute):
            raise BadInputError(
                f"{key} {choice!r} keeps frozen weights in {_NAMES[dtype]}, but training.mixed_precision "
                f"{mixed_precision!r} computes in {_NAMES[compute]} and autocast cannot mix the two in one op; "
                f'use "auto" (= {_NAMES[compute]}) or "fp32"')
    if dtype == torch.float16 and cpu:
        raise BadInputError(f'{key}: frozen weights in fp16 run on a GPU only (CPU autocast does not take '
                            'float16); on the CPU use "auto" or "bf16"')
    return dtype


def frozen_dtypes(config, device, mixed_precision: str | None = None) -> dict[str, torch.dtype | None]:
    """The dtype of each frozen pretrained base of ``config`` ({"vllm", "image_encoder", "vae"}, those it
    has), checked all at once before anything loads. A LLaVA trained in full is float32, not frozen."""
    sections = {"vllm": config.vllm, "image_encoder": config.image_encoder, "vae": config.vae}
    frozen = {name: section for name, section in sections.items() if section.get("source") == "pretrained"
              and not (name == "vllm" and section.get("train") != "lora")}
    return {name: frozen_dtype(section.get("dtype"), device, mixed_precision, f"{name}.dtype")
            for name, section in frozen.items()}
