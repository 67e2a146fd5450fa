"""InstructAny2Pix driver (runs in the user's environment, cwd = the checkout of jacklishufan/InstructAny2Pix).

Checked against jacklishufan/InstructAny2Pix d11e49b. Entry point:
``instructany2pix.InstructAny2PixPipeline(ckpt=..., llm_folder=...)`` called as the official ``serve.py``
calls it: ``pipe(instruction, mm_data, alpha, h=[h0, h1, h2], norm, refinement, num_inference_steps,
subject_strength, cfg)`` -> (non_refined, refined, message); we keep the refined image, as serve.py shows.

Settings: the released checkpoints are ``llm-retrained`` (the constructor's default, pipeline.py l.96). The
readme's demo for them, ``Demo-Retrained.ipynb``, could not be read for this project, and ``serve.py``'s
sliders are set for ``llm-instance`` (serve.py l.8, l.75-86); so the defaults are the pipeline's own
(``__call__``, pipeline.py l.303-304): alpha 0.7, h [0.0, 0.4, 1.0], norm 20, refinement 0.5, 25 steps,
subject_strength 0 (subject consistency off), cfg 10, scale 1.0. Seeding: ``torch.manual_seed`` (serve.py l.40).

Instructions: media sit inside the sentence where they are meant, each ``[mark]`` replaced by ``<video>`` in
the order of ``mm_data`` (serve.py l.20-36; the training data, scripts/train.md l.18: "add [an image of a
alligator] to [a large cypress tree ...]"). Our templates (``instruction_templates``, per kind and op) use
the marks ``[scene]`` and ``[subject]``: "add [subject] to [scene]" for multi-image adds.

Models: the constructor loads, besides the files under ``ckpt``, these by hub id (all checked in the local
Hugging Face cache before loading; the worker runs offline): SDXL base without a variant (pipeline.py l.101;
its scheduler also for the prior, prior/model.py l.134), SDXL refiner in its fp16 variant (l.128-130),
``h94/IP-Adapter``'s ``models/image_encoder`` (ip_adapter.py l.98-103, through l.143-144),
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (the prior's text encoder, prior/model.py l.28-34 and
prior/__init__.py), ``gpt2-medium``'s config (prior/model.py l.187), GroundingDINO's text encoder named by
``text_encoder_type`` in its config file (``bert-base-uncased``; gdino/lib.py l.64), and the vision tower
the LLM's config.json names in ``mm_vision_tower``, if any (llm/model/any2pix_arch.py l.35-37). The LLM is
loaded in 4 bit (pipeline.py l.28-30), so bitsandbytes is needed.

Sizes: the pipeline centre-crops its base image to a 1024 square (``loas_base_img`` with
``resize_and_crop``, pipeline.py l.41-88, l.289-293). We give it the scene as it is, and paste the output,
resized to that square's size in the scene, back where the square was: the rest of the scene, which the
method never saw, is the input's. With two images the LLM picks the base image itself (pipeline.py
l.254-260); when it picks the subject, the whole output is resized to the scene's size (said on stderr).
Mask: InstructAny2Pix has no mask input, so the mask is ignored.
"""

import ast
import importlib.util
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

DEFAULT_LLM_FOLDER = "llm-retrained"
# InstructAny2PixPipeline.__call__'s own defaults (pipeline.py l.303-304); config keys of the same names
CALL_DEFAULTS = {"alpha": 0.7, "h0": 0.0, "h1": 0.4, "h2": 1.0, "norm": 20.0, "refinement": 0.5,
                 "num_inference_steps": 25, "subject_strength": 0.0, "cfg": 10.0, "scale": 1.0}
MARKS = ("[scene]", "[subject]")
DEFAULT_TEMPLATES = {"single_add": "add a {label} to [scene]", "single_replace": "{instruction} in [scene]",
                     "single_remove": "{instruction} in [scene]", "multi_add": "add [subject] to [scene]",
                     "multi_replace": "replace the object in [scene] with [subject]"}
BASE_SIDE = 1024  # loas_base_img's square (pipeline.py l.291)
CHECKPOINT_FILES = ("sdxl/ip_adapter_global_local_2_view.bin", "imagebind_huge.pth", "prior/model.bin",
                    "gdino/sam_vit_h_4b8939.pth", "gdino/gdino.pth", "gdino/GroundingDINO_SwinT_OGC.py")
PACKAGES = ("groundingdino", "segment_anything", "imagebind", "bitsandbytes", "accelerate")
SDXL_BASE, SDXL_REFINER = "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-xl-refiner-1.0"
# what from_pretrained reads: one name, or a tuple of names any one of which will do (safetensors first)
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
AUTO_TOKENIZER = ("tokenizer_config.json",)
HUB_MODELS = (  # (repo id, files, what loads it); the SDXL pipelines' components come from their model_index.json
    ("h94/IP-Adapter", ("models/image_encoder/config.json", tuple(f"models/image_encoder/{name}" for name in
                                                                  TRANSFORMERS_WEIGHTS)),
     "the IP-Adapter's image encoder, ip_adapter.py l.98-103"),
    ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
     (*AUTO_TOKENIZER, "vocab.json", "merges.txt", "config.json", TRANSFORMERS_WEIGHTS),
     "the prior's text encoder, prior/model.py l.28-34"),
    ("gpt2-medium", ("config.json",), "the prior's GPT-2 config, prior/model.py l.187"),
)


def _ckpt(config):
    return os.path.join(config["checkout"], config.get("ckpt", "ckpts"))


# What the pre-flight reads (see worker_main.py): the module the official code runs, and its GPU need.
ENTRY_FILES = ("instructany2pix/pipeline.py",)
GPU_MEMORY_GIB = 40.0
GPU_MEMORY_NOTE = ("estimate, not measured: the 7B LLM in 4 bit, SDXL base and refiner in float16 with the IP-Adapter, "
                   "ImageBind-huge, SAM ViT-H and GroundingDINO are all built on the GPU by the pipeline's constructor")


def _missing(repo_id, files):
    """The entries of ``files`` that neither the folder ``repo_id`` nor the local hub cache holds."""
    from huggingface_hub import try_to_load_from_cache

    def present(name):
        if os.path.isdir(repo_id):
            return os.path.isfile(os.path.join(repo_id, name))
        return isinstance(try_to_load_from_cache(repo_id, name), str)

    return [entry for entry in files
            if not any(present(name) for name in ((entry,) if isinstance(entry, str) else entry))]


def pipeline_files(repo_id, variant=None):
    """What ``DiffusionPipeline.from_pretrained`` reads: model_index.json, then each component it lists
    (config and weights, of ``variant``; tokenizers' vocabularies; schedulers' configs)."""
    from huggingface_hub import try_to_load_from_cache

    index = repo_id if os.path.isdir(repo_id) else try_to_load_from_cache(repo_id, "model_index.json")
    index = os.path.join(index, "model_index.json") if os.path.isdir(str(index)) else index
    if not isinstance(index, str) or not os.path.isfile(index):
        return ["model_index.json"]
    with open(index, encoding="utf-8") as handle:
        components = json.load(handle)
    tag = f".{variant}" if variant else ""
    files = ["model_index.json"]
    for name, spec in sorted(components.items()):
        if name.startswith("_") or not isinstance(spec, list) or None in spec:
            continue
        library, class_name = spec
        if class_name.endswith("Tokenizer") or class_name.endswith("TokenizerFast"):
            files += [f"{name}/vocab.json", f"{name}/merges.txt"]
        elif class_name.endswith("Scheduler"):
            files.append(f"{name}/scheduler_config.json")
        else:
            stem = "model" if library == "transformers" else "diffusion_pytorch_model"
            weights = f"{name}/{stem}{tag}.safetensors"
            files += [f"{name}/config.json", weights if variant else (weights, f"{name}/{stem}.bin")]
    return files


def text_encoder_type(gdino_config):
    """GroundingDINO's text encoder, as its config file names it (``text_encoder_type = "..."``)."""
    with open(gdino_config, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "text_encoder_type"
                                                for target in node.targets):
            return ast.literal_eval(node.value)
    return "bert-base-uncased"  # GroundingDINO's own configs


def hub_models(config):
    """(repo id, files, what loads it) for every model the constructor loads by hub id."""
    models = [(SDXL_BASE, pipeline_files(SDXL_BASE), "SDXL base, pipeline.py l.101, and the prior's scheduler"),
              (SDXL_REFINER, pipeline_files(SDXL_REFINER, "fp16"), "SDXL refiner, fp16 variant, pipeline.py l.128"),
              *HUB_MODELS]
    gdino_config = os.path.join(_ckpt(config), "gdino", "GroundingDINO_SwinT_OGC.py")
    if os.path.isfile(gdino_config):
        models.append((text_encoder_type(gdino_config), (*AUTO_TOKENIZER, "config.json", ("vocab.txt", "vocab.json"),
                                                         TRANSFORMERS_WEIGHTS),
                       "GroundingDINO's text encoder (text_encoder_type in gdino/GroundingDINO_SwinT_OGC.py)"))
    llm_config = os.path.join(_ckpt(config), config.get("llm_folder", DEFAULT_LLM_FOLDER), "config.json")
    if os.path.isfile(llm_config):
        with open(llm_config, encoding="utf-8") as handle:
            tower = json.load(handle).get("mm_vision_tower")
        if tower and tower != "languagebind":  # languagebind is a package (checked with the others)
            models.append((tower, ("preprocessor_config.json", "config.json", TRANSFORMERS_WEIGHTS),
                           "the LLM's vision tower (mm_vision_tower in its config.json)"))
    return models


def _llm_items(config):
    llm = os.path.join(_ckpt(config), config.get("llm_folder", DEFAULT_LLM_FOLDER))
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
    needed = {"config.json": ("config.json",), "weights": weights,
              "tokenizer": ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.model")}
    items = []
    for what, names in needed.items():
        found = any(os.path.isfile(os.path.join(llm, name)) for name in names)
        items.append([f"LLM {what} in {llm}", None if found else
                      f"{llm} (config key 'llm_folder') has no {' or '.join(names)}"])
    return items


def template_problem(config):
    """One line on bad instruction templates (a mark missing or repeated, an unknown key), else None."""
    if "instruction_template_single" in config or "instruction_template_multi" in config:
        return ("config keys instruction_template_single/_multi are replaced by instruction_templates "
                f"(keys {', '.join(DEFAULT_TEMPLATES)})")
    own = config.get("instruction_templates") or {}
    for key, template in own.items():
        if key not in DEFAULT_TEMPLATES:
            return f"instruction_templates has an unknown key {key!r} (known: {', '.join(DEFAULT_TEMPLATES)})"
        wanted = {"[scene]": 1, "[subject]": 1 if key.startswith("multi") else 0}
        if any(str(template).count(mark) != count for mark, count in wanted.items()):
            return (f"instruction_templates[{key!r}] = {template!r} must hold [scene] once"
                    + (" and [subject] once" if key.startswith("multi") else " and no [subject]"))
    return None


def checklist(config):
    """[item, problem or None] for every file, package and hub model the pipeline opens, nothing loaded."""
    ckpt = _ckpt(config)
    items = _llm_items(config)
    items += [[f"checkpoint {os.path.join(ckpt, name)}", None if os.path.isfile(os.path.join(ckpt, name)) else
               f"{os.path.join(ckpt, name)} does not exist"] for name in CHECKPOINT_FILES]
    items += [[f"package {name}", None if importlib.util.find_spec(name) is not None else
               f"python package {name} is not installed (the official code imports it)"] for name in PACKAGES]
    for repo_id, files, what in hub_models(config):
        missing = [entry if isinstance(entry, str) else " or ".join(entry) for entry in _missing(repo_id, files)]
        items.append([f"hub model {repo_id}", None if not missing else
                      f"{repo_id} ({what}) is not complete in the local Hugging Face cache: {', '.join(missing)}"])
    items.append(["instruction templates", template_problem(config)])
    return items


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    from instructany2pix import InstructAny2PixPipeline

    pipeline = InstructAny2PixPipeline(ckpt=_ckpt(config), llm_folder=config.get("llm_folder", DEFAULT_LLM_FOLDER))
    pipeline.pipe.scheduler = pipeline.pipe_inversion.scheduler  # as serve.py does (l.9)
    return {"pipeline": pipeline, "config": config, "scratch": tempfile.mkdtemp(prefix="fsmi-any2pix-")}


def official_instruction(template, instruction, label, files):
    """(text with ``<video>`` tokens, mm_data): each mark in ``files`` replaced in the order it appears."""
    text = template.format(instruction=instruction, label=label)
    mm_data = []
    while any(mark in text for mark in files):
        mark = min((mark for mark in files if mark in text), key=text.find)
        mm_data.append({"type": "image", "fname": files[mark]})
        text = text.replace(mark, "<video>", 1)
    return text, mm_data


def centre_crop_box(width, height, side=BASE_SIDE):
    """(left, top, size) in scene pixels of the square ``loas_base_img`` keeps: the image scaled so that its
    short side is ``side`` (the long one truncated by int()), then the middle cut with PIL's rounding."""
    if width == height:
        return 0, 0, width
    short, long = min(width, height), max(width, height)
    offset = round((int(side * long / short) - side) / 2)
    start = min(round(offset * short / side), long - short)
    return (start, 0, short) if width > height else (0, start, short)


def call_settings(config):
    settings = {key: config.get(key, default) for key, default in CALL_DEFAULTS.items()}
    return {"alpha": float(settings["alpha"]), "h": [float(settings[key]) for key in ("h0", "h1", "h2")],
            "norm": float(settings["norm"]), "refinement": float(settings["refinement"]),
            "num_inference_steps": int(settings["num_inference_steps"]),
            "subject_strength": float(settings["subject_strength"]), "cfg": float(settings["cfg"]),
            "scale": float(settings["scale"])}


def edit(state, request, scene, mask, subject):
    import torch

    config = state["config"]
    key = f"{'multi' if subject is not None else 'single'}_{request['op']}"
    templates = {**DEFAULT_TEMPLATES, **(config.get("instruction_templates") or {})}
    if key not in templates:
        raise ValueError(f"no instruction template for {key} cases (instruction_templates)")
    files = {"[scene]": os.path.join(state["scratch"], "scene.png")}
    Image.fromarray(scene).save(files["[scene]"])
    if subject is not None:
        files["[subject]"] = os.path.join(state["scratch"], "subject.png")
        Image.fromarray(subject).save(files["[subject]"])
    text, mm_data = official_instruction(templates[key], request["instruction"], request["label"], files)
    torch.manual_seed(int(request["seed"]))
    pipeline = state["pipeline"]
    pipeline.cache = None  # set again by the call (pipeline.py l.310), even when it then fails
    try:
        _, refined, _ = pipeline(text, mm_data, **call_settings(config))
    except Exception:
        if pipeline.cache is not None and pipeline.cache[0] is None:  # forward_llm found no <im_gen> (l.217-221)
            raise RuntimeError(f"InstructAny2Pix's LLM answered {text!r} without an <im_gen> token, so there is no "
                               f"image to make; it said: {pipeline.cache[2]!r}") from None
        raise
    height, width = scene.shape[:2]
    refined = refined.convert("RGB")
    if os.path.abspath(pipeline.cache[3]) != os.path.abspath(files["[scene]"]):
        print(f"{request['case_id']}: the model edited the subject image, not the scene; "
              "its whole output is resized to the scene's size", file=sys.stderr)
        return np.asarray(refined.resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)
    left, top, size = centre_crop_box(width, height)
    output = scene.copy()
    output[top:top + size, left:left + size] = np.asarray(refined.resize((size, size), Image.Resampling.BICUBIC))
    return output
