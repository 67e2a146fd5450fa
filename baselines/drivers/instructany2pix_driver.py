"""InstructAny2Pix driver (runs in the user's environment, cwd = the checkout of jacklishufan/InstructAny2Pix).

Checked against jacklishufan/InstructAny2Pix d11e49b. Entry point:
``instructany2pix.InstructAny2PixPipeline(ckpt=..., llm_folder=...)`` called as in the official
``serve.py``: ``pipe(instruction, mm_data, alpha, h=[h0, h1, h2], norm, refinement,
num_inference_steps, subject_strength=...)`` -> (non_refined, refined, message); we keep the refined
image. Defaults are serve.py's slider defaults (subject_strength 0.65, its "subject_refinement").
Checkpoints: the released ``jacklishufan/instructany2pix_retrained`` in ``<checkout>/ckpts``
(``llm-retrained/``, ``sdxl/``, ``prior/``, ``gdino/``, ``imagebind_huge.pth``); the constructor always
builds the segmentator, so ``gdino/`` must hold ``sam_vit_h_4b8939.pth``, ``gdino.pth`` and
``GroundingDINO_SwinT_OGC.py``, and the packages ``groundingdino``, ``segment_anything`` and
``imagebind`` must be installed; SDXL base and refiner are loaded by hub id, so they must be in the local
Hugging Face cache (the worker runs offline). All are checked before loading.
Multimodal inputs are files referenced in the instruction by ``<video>`` tokens in the order of
``mm_data`` (serve.py replaces its ``[image1]`` marks this way); our ``instruction_template`` uses
``[scene]`` and ``[subject]`` marks. Seeding: ``torch.manual_seed``.
Mask: InstructAny2Pix has no mask input, so the mask is ignored. Sizes: the pipeline center-crops
its base image to a 1024 square, so we pad the scene to a square first (edge pixels), and cut the
scene's area out of the 1024 output and resize it back: the output covers the whole scene. With two
images the LLM picks the base image itself (``base_idx``); when it picks the subject, there is no
scene area to cut, so the whole output is resized to the scene's size (and said on stderr).
"""

import importlib.util
import os
import sys
import tempfile

import numpy as np
from PIL import Image

DEFAULT_TEMPLATES = {"single": "[scene] {instruction}", "multi": "[scene] [subject] {instruction}"}
DEFAULT_LLM_FOLDER = "llm-retrained"  # the released checkpoints and the pipeline's own default
CHECKPOINT_FILES = ("sdxl/ip_adapter_global_local_2_view.bin", "imagebind_huge.pth", "prior/model.bin",
                    "gdino/sam_vit_h_4b8939.pth", "gdino/gdino.pth", "gdino/GroundingDINO_SwinT_OGC.py")
PACKAGES = ("groundingdino", "segment_anything", "imagebind")
HUB_PIPELINES = ("stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-xl-refiner-1.0")


def _ckpt(config):
    return os.path.join(config["checkout"], config.get("ckpt", "ckpts"))


# What the pre-flight reads (see worker_main.py): the module the official code runs, and its GPU need.
ENTRY_FILES = ("instructany2pix/pipeline.py",)
GPU_MEMORY_GIB = 40.0
GPU_MEMORY_NOTE = ("estimate, not measured: the 7B LLM, SDXL base and refiner with the IP-Adapter, ImageBind-huge, "
                   "SAM ViT-H and GroundingDINO are all built on the GPU by the pipeline's constructor")


def checklist(config):
    """[item, problem or None] for every file, package and hub model the pipeline opens, nothing loaded."""
    ckpt = _ckpt(config)
    llm_folder = config.get("llm_folder", DEFAULT_LLM_FOLDER)
    llm_config = os.path.join(ckpt, llm_folder, "config.json")
    items = [[f"LLM {os.path.join(ckpt, llm_folder)}", None if os.path.isfile(llm_config) else
              f"{os.path.join(ckpt, llm_folder)} (config key 'llm_folder') has no config.json"]]
    items += [[f"checkpoint {os.path.join(ckpt, name)}", None if os.path.isfile(os.path.join(ckpt, name)) else
               f"{os.path.join(ckpt, name)} does not exist"] for name in CHECKPOINT_FILES]
    items += [[f"package {name}", None if importlib.util.find_spec(name) is not None else
               f"python package {name} is not installed (the official code imports it)"] for name in PACKAGES]
    from huggingface_hub import try_to_load_from_cache

    items += [[f"hub model {model_id}", None if isinstance(try_to_load_from_cache(model_id, "model_index.json"), str)
               else f"{model_id} is not in the local Hugging Face cache (the pipeline loads it by hub id)"]
              for model_id in HUB_PIPELINES]
    return items


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    from instructany2pix import InstructAny2PixPipeline

    pipeline = InstructAny2PixPipeline(ckpt=_ckpt(config), llm_folder=config.get("llm_folder", DEFAULT_LLM_FOLDER))
    pipeline.pipe.scheduler = pipeline.pipe_inversion.scheduler  # as serve.py does
    return {"pipeline": pipeline, "config": config, "scratch": tempfile.mkdtemp(prefix="fsmi-any2pix-")}


def pad_to_square(image):
    """Edge-pad an RGB array to a square; returns the square and the (top, left) offset of the image."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padded = np.pad(image, ((top, side - height - top), (left, side - width - left), (0, 0)), mode="edge")
    return padded, (top, left)


def edit(state, request, scene, mask, subject):
    import torch

    config = state["config"]
    kind = "multi" if subject is not None else "single"
    template = config.get(f"instruction_template_{kind}", DEFAULT_TEMPLATES[kind])
    text = template.format(instruction=request["instruction"], label=request["label"])
    square, (top, left) = pad_to_square(scene)
    files = {"[scene]": os.path.join(state["scratch"], "scene.png")}
    Image.fromarray(square).save(files["[scene]"])
    if subject is not None:
        files["[subject]"] = os.path.join(state["scratch"], "subject.png")
        Image.fromarray(subject).save(files["[subject]"])
    mm_data = []
    while True:  # replace marks in the order they appear, as serve.py does
        found = [(text.find(mark), mark) for mark in files if mark in text]
        if not found:
            break
        _, mark = min(found)
        mm_data.append({"type": "image", "fname": files[mark]})
        text = text.replace(mark, "<video>", 1)
    torch.manual_seed(int(request["seed"]))
    pipeline = state["pipeline"]
    _, refined, _ = pipeline(
        text, mm_data, alpha=float(config.get("alpha", 1.0)),
        h=[float(config.get("h0", 0.4)), float(config.get("h1", 0.6)), float(config.get("h2", 0.4))],
        norm=float(config.get("norm", 20.0)), refinement=float(config.get("refinement", 0.3)),
        num_inference_steps=int(config.get("num_inference_steps", 25)),
        subject_strength=float(config.get("subject_strength", 0.65)))
    height, width = scene.shape[:2]
    base_image = pipeline.cache[3] if getattr(pipeline, "cache", None) else files["[scene]"]
    if os.path.abspath(base_image) != os.path.abspath(files["[scene]"]):
        print(f"{request['case_id']}: the model edited the subject image, not the scene; "
              "its whole output is resized to the scene's size", file=sys.stderr)
        return np.asarray(refined.convert("RGB").resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)
    side = square.shape[0]
    output = np.asarray(refined.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.uint8)
    return output[top:top + height, left:left + width].copy()
