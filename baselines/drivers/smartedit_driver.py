"""SmartEdit driver (runs in the user's SmartEdit environment, cwd = the checkout of TencentARC/SmartEdit).

Checked against TencentARC/SmartEdit a65f126. Entry point: the official test script
``test/DS_SmartEdit_test.py``. We import it as a module (its ``main`` walks the ReasonEdit folders,
so it is not called) and repeat ``main``'s loading steps for one model:
``SmartEdit_model.from_pretrained(model_name_or_path)``, the LLaMA tokenizer, the CLIP vision tower,
the new tokens, the SD Q-Former, the LoRA (``PeftModel_for_LLM``), the BIM module, then
``StableDiffusionInstructPix2PixPipeline_modulated`` with the ``UNet2DConditionModel_ZeroConv`` UNet
(8 input channels) and the ``unet-<steps>`` checkpoint. Per case: ``generate_LLaVA_image`` ->
``inference_BIM_module`` -> the pipeline, as in the script (100 steps, text guidance 7.5, image 1.5,
input resized to ``resize_resolution`` = 256). Both models stay loaded (the script frees the first
one before loading the pipeline; a run needs both), so it needs more GPU memory than the script.

LoRA config: the hub's SmartEdit-7B/13B ship ``adapter_config.json`` inside ``LLM-<steps>/`` only;
the script copies ``<total_dir>/adapter_config.json`` there and so fails on them. We use
``LLM-<steps>/adapter_config.json`` when present, else ``<total_dir>/adapter_config.json`` through a
scratch folder (the user's checkpoint folder is never written). Helper models loaded by hub id:
``bert-base-uncased`` (the Q-Former's config) and the LLaVA vision tower (``mm_vision_tower`` in the
LLaVA config.json, ``openai/clip-vit-large-patch14``) must be local folders or in the local Hugging Face
cache; the worker runs offline, and both are checked before loading.
Device and dtypes, as the script: the script puts its tensors on a hard-coded ``"cuda"`` (the token ids in
``get_prompt_embedding_LLM``, l.47 and l.92-94; the image, l.314; the generator, l.504), so the model goes
to that same ``"cuda"`` in float32 (l.252) and the pipeline to it in float16 (l.409-414, l.439). Which GPU
"cuda" is comes from our side: ``--device cuda:N`` (or a rank under ``accelerate launch``) starts the worker
with only that GPU visible. Without a CUDA device the checklist says so, before anything is loaded.
Mask: ignored (SmartEdit takes the instruction only). The output is resize_resolution square; our
side resizes it to the scene's size.
"""

import importlib.util
import os
import random
import shutil
import sys
import tempfile
from types import SimpleNamespace

import numpy as np


def _load_test_module(checkout, temperature):
    path = os.path.join(checkout, "test", "DS_SmartEdit_test.py")
    spec = importlib.util.spec_from_file_location("smartedit_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.args = SimpleNamespace(temperature=temperature)  # the script reads a global ``args``
    return module


def _shard(config):
    version = config.get("sd_qformer_version", "v1.1-7b")
    return "pytorch_model-00002-of-00002.bin" if version == "v1.1-7b" else "pytorch_model-00003-of-00003.bin"


def _vision_tower(llava_path):
    import json

    config_path = os.path.join(llava_path, "config.json")
    if not os.path.isfile(config_path):
        return None
    with open(config_path, encoding="utf-8") as handle:
        return json.load(handle).get("mm_vision_tower")


def hub_model_available(name, filename="config.json"):
    """True when ``name`` is a local folder with ``filename`` or a hub id whose ``filename`` is cached."""
    if os.path.isdir(name):
        return os.path.isfile(os.path.join(name, filename))
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, filename), str)


def lora_config(total_dir, steps):
    """The adapter_config.json to use: inside LLM-<steps>/ (as on the hub), else at the top of total_dir."""
    for path in (os.path.join(total_dir, f"LLM-{steps}", "adapter_config.json"),
                 os.path.join(total_dir, "adapter_config.json")):
        if os.path.isfile(path):
            return path
    return None


# What the pre-flight reads (see worker_main.py): the script the official code runs, and its GPU need.
ENTRY_FILES = ("test/DS_SmartEdit_test.py",)
IMPORT_PATHS = ("", "test")  # the script imports its neighbours in test/ and the checkout's own packages
GPU_MEMORY_GIB = 32.0
GPU_MEMORY_NOTE = ("estimate, not measured, for 7B (13B: about 52 GiB): 6.7e9 LLaMA and 0.3e9 CLIP-tower "
                   "parameters in float32 as the script has them (about 26 GiB), the InstructPix2Pix pipeline "
                   "in float16 (about 2 GiB) loaded beside them, and activations")
DEVICE = "cuda"  # the script's own device string (test/DS_SmartEdit_test.py l.47, l.92-94, l.252, l.314, l.504)


def cuda_check():
    """[item, problem or None]: whether this python sees a CUDA device (the script cannot run without one)."""
    try:
        import torch
    except ImportError:
        return ["CUDA device", "torch is not installed in this python"]
    if not torch.cuda.is_available():
        return ["CUDA device", "no CUDA device is visible to this python; SmartEdit's test script puts its "
                "tensors on \"cuda\" and cannot run on the CPU"]
    return ["CUDA device", None]


def checklist(config):
    """[item, problem or None] for every file and hub model the script opens, nothing loaded."""
    keys = ("total_dir", "model_name_or_path", "llava_model_path", "sd_ip2p_path", "sd_model_path")
    unset = [[f"config key {key}", f"set config key {key!r}"] for key in keys if not config.get(key)]
    if unset:
        return unset
    total_dir, steps = config["total_dir"], int(config.get("steps", 15000))
    llava_path = config["llava_model_path"]
    required = [config["model_name_or_path"], os.path.join(llava_path, _shard(config)),
                os.path.join(total_dir, f"LLM-{steps}", "adapter_model.bin"),
                os.path.join(total_dir, f"unet-{steps}", "adapter_model.bin"),
                os.path.join(total_dir, f"modulate-{steps}", "adapter_model.bin"),
                os.path.join(total_dir, "embeddings_qformer", f"checkpoint-{steps}_embeddings_qformer.bin"),
                os.path.join(config["sd_ip2p_path"], "model_index.json"),
                os.path.join(config["sd_model_path"], "unet", "config.json")]
    items = [[f"checkpoint {path}", None if os.path.exists(path) else f"{path} does not exist"] for path in required]
    items.append(["LoRA adapter_config.json", None if lora_config(total_dir, steps) is not None else
                  f"no adapter_config.json in {os.path.join(total_dir, f'LLM-{steps}')} or {total_dir}"])
    items.append(["hub model bert-base-uncased", None if hub_model_available("bert-base-uncased") else
                  "bert-base-uncased (the Q-Former's config) is not in the local Hugging Face cache"])
    tower = _vision_tower(llava_path)
    if tower is None:
        items.append(["LLaVA vision tower", f"{os.path.join(llava_path, 'config.json')} has no mm_vision_tower"])
    else:
        items.append([f"hub model {tower}", None if hub_model_available(tower) else
                      f"{tower} (the LLaVA vision tower) is not a local folder or in the local Hugging Face cache"])
    items.append(cuda_check())
    return items


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)  # the script reads ./data/ConversationTemplateEditing_use.txt
    sys.path[:0] = [checkout, os.path.join(checkout, "test")]
    total_dir, steps = config["total_dir"], int(config.get("steps", 15000))
    version = config.get("sd_qformer_version", "v1.1-7b")
    llava_path = config["llava_model_path"]
    shard = _shard(config)
    device = DEVICE  # our side has shown this worker only the GPU it is to use
    import torch
    import torch.nn as nn
    import transformers

    test = _load_test_module(checkout, float(config.get("temperature", 0.7)))
    model = test.SmartEdit_model.from_pretrained(config["model_name_or_path"], cache_dir=None)
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        config["model_name_or_path"], model_max_length=512, padding_side="right", use_fast=False)
    tokenizer.pad_token = tokenizer.unk_token
    model.init_visual_features_extractor(LLaVA_model_path=llava_path, sd_qformer_version=version)
    model.setup_tokens_for_conversation(tokenizer, num_new_tokens=32, tune_new_embeddings=True,
                                        editing_template=test.editing_template, editing_max_length=512)
    model.init_sd_qformer(num_hidden_layers=6)
    from DS_PeftForLoRA import PeftModel_for_LLM

    llm_dir = os.path.join(total_dir, f"LLM-{steps}")
    adapter_dir = llm_dir
    if lora_config(total_dir, steps) != os.path.join(llm_dir, "adapter_config.json"):
        # the script's copy into LLM-<steps>/, made in a scratch folder instead of the user's checkpoints
        adapter_dir = tempfile.mkdtemp(prefix="fsmi-smartedit-lora-")
        shutil.copy(os.path.join(total_dir, "adapter_config.json"), os.path.join(adapter_dir, "adapter_config.json"))
        os.symlink(os.path.join(os.path.abspath(llm_dir), "adapter_model.bin"),
                   os.path.join(adapter_dir, "adapter_model.bin"))
    model.model = PeftModel_for_LLM.from_pretrained(model.model, adapter_dir, adapter_name="default")
    model.load_pretrained_LLaMA_for_inference(pretrained_LLaMA=os.path.join(llm_dir, "adapter_model.bin"))
    model.load_pretrained_for_inference(
        pretrain_model=os.path.join(total_dir, "embeddings_qformer", f"checkpoint-{steps}_embeddings_qformer.bin"),
        LLaVA_00002_weights=os.path.join(llava_path, shard))
    model.init_BIM_module()
    model.load_BIM_module_for_inference(modulate_path=os.path.join(total_dir, f"modulate-{steps}", "adapter_model.bin"))
    model.to(dtype=torch.float32, device=device)
    model.eval()

    pipe = test.StableDiffusionInstructPix2PixPipeline_modulated.from_pretrained(
        config["sd_ip2p_path"], torch_dtype=torch.float16, safety_checker=None).to(device)
    pipe.unet = test.UNet2DConditionModel_ZeroConv.from_pretrained(
        config["sd_model_path"], subfolder="unet", low_cpu_mem_usage=False, ignore_mismatched_sizes=True)
    conv_in = pipe.unet.conv_in
    pipe.unet.conv_in = nn.Conv2d(8, conv_in.out_channels, conv_in.kernel_size, conv_in.stride, conv_in.padding)
    checkpoint = torch.load(os.path.join(total_dir, f"unet-{steps}", "adapter_model.bin"), map_location="cpu")
    pipe.unet.load_state_dict({key[len("unet."):]: value for key, value in checkpoint.items() if "unet." in key},
                              strict=True)
    pipe.unet.to(dtype=torch.float16, device=device).eval()
    pipe.set_progress_bar_config(disable=True)
    return {"test": test, "model": model, "tokenizer": tokenizer, "pipe": pipe, "device": device,
            "resolution": int(config.get("resize_resolution", 256)),
            "steps": int(config.get("num_inference_steps", 100)),
            "text_scale": float(config.get("guidance_scale", 7.5)),
            "image_scale": float(config.get("image_guidance_scale", 1.5))}


def edit(state, request, scene, mask, subject):
    import torch
    from PIL import Image

    seed = int(request["seed"])
    random.seed(seed)  # the script picks a conversation template at random
    torch.manual_seed(seed)  # and samples the LLM's tokens
    model, resolution = state["model"], state["resolution"]
    image = Image.fromarray(scene, mode="RGB")
    with torch.inference_mode():
        vit_input = image.resize((224, 224), resample=Image.Resampling.BICUBIC)
        vit_input = model.vision_tower.image_processor.preprocess(vit_input, return_tensors="pt")["pixel_values"]
        clip_features = model.vision_tower(vit_input.to(dtype=torch.float32, device=state["device"]))
        llm_input = model.mm_projector(clip_features)
        embeddings = state["test"].generate_LLaVA_image(llm_input, request["instruction"], state["tokenizer"], model)
        modulated_image, modulated_sd = model.inference_BIM_module(
            clip_features, embeddings.to(torch.float32), latent_w=resolution // 8, latent_h=resolution // 8)
        embeddings = embeddings + 0.5 * modulated_sd.to(torch.float16)
        output = state["pipe"](
            prompt_embeds=embeddings, image=image.resize((resolution, resolution), resample=Image.Resampling.BICUBIC),
            num_inference_steps=state["steps"], guidance_scale=state["text_scale"],
            image_guidance_scale=state["image_scale"], modulated_image_feature=modulated_image.to(torch.float16),
            generator=torch.Generator(state["device"]).manual_seed(seed)).images[0]
    return np.asarray(output.convert("RGB"), dtype=np.uint8)
