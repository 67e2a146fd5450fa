"""Build FlexEdit's networks and tokenizer from a named config (random or from the user's local weights)."""

from __future__ import annotations

from flexedit_model.config import FlexEditConfig, pretrained_path
from flexedit_model.latent_codec import build_vae, latent_channels
from flexedit_model.qformer import qformer_config
from flexedit_model.tokenizer import add_flexedit_tokens, build_byte_tokenizer
from flexedit_model.unet import scratch_unet_config, widen_conv_in
from flexedit_model.vllm import image_token_ids, scratch_llava_config
from fsmi_bench.errors import BadInputError


def build_tokenizer(config: FlexEditConfig):
    if config.vllm["source"] == "scratch":
        return build_byte_tokenizer(config.num_image_tokens)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pretrained_path(config.vllm, "LLaVA", "config.json"))
    add_flexedit_tokens(tokenizer, config.num_image_tokens)
    return tokenizer


def build_components(config: FlexEditConfig, seed: int = 0, device=None, mixed_precision: str | None = None):
    """(FlexEditModel, vae, tokenizer) for ``config``; random parts seeded with ``seed``.

    Pretrained parts (``"source": "pretrained"``) are loaded from local folders, or a
    MissingWeightsError says which folder is needed. Each is checked before anything is loaded. The
    model is built around the loaded modules themselves (``FlexEditModel.from_parts``); frozen ones are
    kept in the dtype their section's ``dtype`` names, read with ``mixed_precision`` (the training run's
    ``training.mixed_precision``; None outside training): flexedit_model/precision.py. ``device`` is where
    they will run, by default a GPU if there is one. Frozen bases are referenced by path and sha256 when the
    model is saved.
    """
    import torch

    from flexedit_model.checkpoint import reference_base
    from flexedit_model.model import FlexEditModel
    from flexedit_model.precision import frozen_dtypes

    sections = ((config.vllm, "LLaVA"), (config.image_encoder, "CLIP ViT-L/14 vision"),
                (config.unet, "the Stable Diffusion 1.5 UNet"))
    for section, what in sections:
        if section.get("source") == "pretrained":
            pretrained_path(section, what, "config.json")
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = frozen_dtypes(config, device, mixed_precision)  # a refused dtype stops here, before any load
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(config)
    vae = build_vae(config.vae, dtypes.get("vae"))
    settings = dict(
        image_token_ids=image_token_ids(tokenizer, config.num_image_tokens),
        num_query_tokens=config.qformer["num_query_tokens"],
        num_subject_tokens=config.adapter["num_subject_tokens"], adapter_heads=config.adapter["num_heads"],
        use_ca=config.adapter["use_ca"], use_dca=config.adapter["use_dca"],
        lora_rank=config.vllm["lora_rank"], lora_alpha=config.vllm["lora_alpha"],
        layout_grid=layout_grid(config.training),
    )
    if all(section.get("source") == "scratch" for section, _ in sections):
        # Configs trained from scratch: every part built from its sizes, in the order that seeds fix.
        vllm_config = scratch_llava_config(config.vllm, tokenizer)
        model = FlexEditModel(
            vllm_config=vllm_config.to_dict(),
            qformer_config=qformer_config(config.qformer, vllm_config.text_config.hidden_size).to_dict(),
            image_encoder_config=scratch_clip_config(config.image_encoder).to_dict(),
            unet_config=scratch_unet_config(config.unet, latent_channels(vae)), **settings)
        return model, vae, tokenizer
    vllm, references = _vllm_part(config, tokenizer, dtypes.get("vllm")), {}
    new_rows_only = _trains_new_rows_only(config.vllm)
    if config.vllm["source"] == "pretrained" and config.vllm["train"] == "lora":
        references["vllm"] = pretrained_path(config.vllm, "LLaVA", "config.json")
    image_encoder = _image_encoder_part(config, dtypes.get("image_encoder"))
    if config.image_encoder["source"] == "pretrained":
        references["image_encoder"] = pretrained_path(config.image_encoder, "CLIP ViT-L/14 vision", "config.json")
    unet = _unet_part(config, latent_channels(vae))
    model = FlexEditModel.from_parts(
        vllm, image_encoder, unet, new_token_rows_only=new_rows_only,
        qformer_config=qformer_config(config.qformer, vllm.config.text_config.hidden_size).to_dict(), **settings)
    model.base_references = {part: reference_base(part, folder) for part, folder in references.items()}
    return model, vae, tokenizer


def _trains_new_rows_only(section: dict) -> bool:
    """Whether only the ``<img_i>`` rows of LLaVA's embedding and output matrices train: a pretrained LLaVA
    with LoRA, unless ``"train_token_rows": "all"`` says otherwise."""
    rows = section.get("train_token_rows", "new")
    if rows not in ("new", "all"):
        raise BadInputError(f"vllm.train_token_rows must be 'new' or 'all', got {rows!r}")
    return section["source"] == "pretrained" and section["train"] == "lora" and rows == "new"


def _vllm_part(config: FlexEditConfig, tokenizer, frozen):
    """LLaVA: built from sizes, or loaded in ``frozen`` (frozen under LoRA; None = as stored) or float32
    (trained in full)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    if config.vllm["source"] == "scratch":
        return LlavaForConditionalGeneration(scratch_llava_config(config.vllm, tokenizer))
    dtype = frozen if config.vllm["train"] == "lora" else torch.float32
    vllm = LlavaForConditionalGeneration.from_pretrained(pretrained_path(config.vllm, "LLaVA", "config.json"),
                                                         dtype=dtype if dtype is not None else "auto")
    if not _trains_new_rows_only(config.vllm):
        vllm.resize_token_embeddings(len(tokenizer))  # whole matrices train: room for the new rows
    return vllm


def scratch_clip_config(section: dict):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=section["hidden_size"], intermediate_size=section["intermediate_size"],
        num_hidden_layers=section["num_hidden_layers"], num_attention_heads=section["num_attention_heads"],
        image_size=section["image_size"], patch_size=section["patch_size"], projection_dim=section["projection_dim"],
    )


def _image_encoder_part(config: FlexEditConfig, dtype):
    from transformers import CLIPVisionModelWithProjection

    section = config.image_encoder
    if section["source"] == "scratch":
        return CLIPVisionModelWithProjection(scratch_clip_config(section))
    return CLIPVisionModelWithProjection.from_pretrained(
        pretrained_path(section, "CLIP ViT-L/14 vision", "config.json"), dtype=dtype if dtype is not None else "auto")


def _unet_part(config: FlexEditConfig, channels: int):
    import torch
    from diffusers import UNet2DConditionModel

    if config.unet["source"] == "scratch":
        return UNet2DConditionModel(**scratch_unet_config(config.unet, channels))
    # The UNet trains (as in InstructPix2Pix): kept in float32, computed under mixed precision.
    unet = UNet2DConditionModel.from_pretrained(
        pretrained_path(config.unet, "the Stable Diffusion 1.5 UNet", "config.json"), torch_dtype=torch.float32)
    widen_conv_in(unet, 2 * channels)
    return unet


def layout_grid(training: dict) -> int:
    """The side of the layout read-out grid: ``training.layout_grid`` (8) when ``layout_loss_weight`` > 0, else
    0 (no read-out head). A weight that is not a number builds none; training rejects it with a message."""
    try:
        weight = float(training.get("layout_loss_weight", 0))
    except (TypeError, ValueError):
        return 0
    return int(training.get("layout_grid", 8)) if weight > 0 else 0


def build_scheduler(config: FlexEditConfig, kind: str = "ddim"):
    """The noise schedule of ``config``: DDIM for sampling, DDPM (same betas) for training.

    Optional ``scheduler`` keys (defaults: Stable Diffusion 1.5's, which the ``paper`` config's UNet
    was trained with): ``prediction_type`` ("epsilon", "v_prediction" or "sample"),
    ``rescale_betas_zero_snr`` and ``timestep_spacing`` ("leading" or "trailing"). Configs trained from
    scratch on the pixel-shuffle codec need v-prediction with a zero terminal SNR: in pixel space,
    epsilon-prediction turns the small noise-prediction error of a briefly trained UNet into x0 errors
    of (1 - a_t) / a_t times that (about 200x at the last timestep of SD's schedule), so samples stay
    noise; and a non-zero terminal SNR leaks the image's mean (a mask is mostly black) into training
    inputs that sampling, starting from pure noise, never has.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    section = config.scheduler
    options = dict(num_train_timesteps=section["num_train_timesteps"], beta_schedule=section["beta_schedule"],
                   beta_start=section["beta_start"], beta_end=section["beta_end"], clip_sample=False,
                   prediction_type=section.get("prediction_type", "epsilon"),
                   rescale_betas_zero_snr=bool(section.get("rescale_betas_zero_snr", False)),
                   timestep_spacing=section.get("timestep_spacing", "leading"))
    if kind == "ddpm":
        return DDPMScheduler(**options)
    # "trailing" starts sampling at the last training timestep (pure noise with a zero terminal SNR).
    offset = 0 if options["timestep_spacing"] == "trailing" else 1
    return DDIMScheduler(**options, set_alpha_to_one=False, steps_offset=offset)


def build_pipeline(config: FlexEditConfig, seed: int = 0, components=None):
    """A FlexEditPipeline for ``config`` (new random/pretrained parts, or the given (model, vae, tokenizer))."""
    from flexedit_model.pipeline_flexedit import FlexEditPipeline

    model, vae, tokenizer = components or build_components(config, seed)
    # Sampling runs without dropout (the Q-Former has some), as after from_pretrained.
    model.eval()
    inference = config.inference
    return FlexEditPipeline(
        model=model, vae=vae, tokenizer=tokenizer, scheduler=build_scheduler(config),
        resolution=config.resolution, max_response_tokens=config.vllm["max_response_tokens"],
        num_inference_steps=inference["num_inference_steps"], text_guidance=inference["text_guidance"],
        image_guidance=inference["image_guidance"], subject_scale=inference["subject_scale"],
        generate_answer=bool(inference.get("generate_answer", False)),
    )
