"""LAR-Gen driver (runs in the user's scepter environment, cwd = the checkout of modelscope/scepter).

Checked against modelscope/scepter 9f5b439. Entry point:
``scepter.modules.inference.largen_inference.LargenInference``, built with
``init_from_cfg(Config(cfg_file=...))`` from the LAR-Gen model yaml (scepter's
``scepter/methods/studio/inference/largen/largen_pro.yaml`` unless ``model_yaml`` names another) and
called with ``largen_state=True`` and the tensors that scepter's own
``LargenUI.data_preprocess_inpaint`` prepares (we call that function, so the crop/pad/resize is the
official one).

Weights: the yaml names five files and folders as ``ms://<model id>@<path>`` (ModelScope). Only the
local file system is registered, so nothing is downloaded: ``ms_models`` maps each model id to the
user's local snapshot of it (``iic/LARGEN``, ``AI-ModelScope/clip-vit-large-patch14``), and the driver
writes a copy of the yaml with every reference replaced by the local path. An unmapped model id or a
missing file fails before loading, naming the yaml key. First load splits the checkpoint into three
``.pth`` files next to it, so its folder must be writable (checked).

Tasks and masks: multi-image cases use ``Text_Subject_Guided_Inpainting`` (config ``subject_task``;
the official preprocessing fills the mask's bounding box for this task) with the subject's true mask
from the benchmark (``subject_mask``) as the reference mask (whole subject image when the benchmark
has none); single-image cases ``Text_Guided_Inpainting`` with the free-shape mask as the inpainting
mask as is. The scene is cropped to a square around the mask's box expanded 1.3x, edited at
``output_size`` and pasted back (the official ``crop_back``), so the output has the scene's size.
Prompt: ``prompt_template`` ("{label}"), ``remove_prompt`` for remove cases.
Call settings and pixels as scepter's studio makes them (gallery_ui.py ``input_init``, l.157-183, and
l.226-229): ``original_size_as_tuple`` and ``target_size_as_tuple`` are both the output size,
``crop_coords_top_left`` is [0, 0] (the model yaml's 1024 would otherwise stay in SDXL's size
conditioning), and the [0, 1] result becomes uint8 by truncation (``(images * 255).astype(np.uint8)``).
"""

import os
import sys
import tempfile

import numpy as np

DEFAULT_MODEL_YAML = os.path.join("scepter", "methods", "studio", "inference", "largen", "largen_pro.yaml")
MODELSCOPE_PREFIX = "ms://"


def _model_yaml(config):
    return os.path.join(config["checkout"], config.get("model_yaml") or DEFAULT_MODEL_YAML)


def _references(node, trail=""):
    """Yield (yaml key path, value) for every ``ms://`` string in a parsed yaml."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _references(value, f"{trail}.{key}" if trail else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _references(value, f"{trail}[{index}]")
    elif isinstance(node, str) and node.startswith(MODELSCOPE_PREFIX):
        yield trail, node


def local_path(reference, ms_models):
    """``ms://<model id>@<path>`` -> ``<local snapshot of model id>/<path>``; None when the id is not mapped."""
    model_id, _, inner = reference[len(MODELSCOPE_PREFIX):].partition("@")
    root = ms_models.get(model_id)
    if root is None:
        return None
    return os.path.join(os.path.expanduser(root), inner) if inner else os.path.expanduser(root)


def _resolve(node, ms_models):
    if isinstance(node, dict):
        return {key: _resolve(value, ms_models) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, ms_models) for value in node]
    if isinstance(node, str) and node.startswith(MODELSCOPE_PREFIX):
        return local_path(node, ms_models)
    return node


# What the pre-flight reads (see worker_main.py): the modules the official code runs, and its GPU need.
ENTRY_FILES = ("scepter/modules/inference/largen_inference.py", "scepter/studio/inference/inference_ui/largen_ui.py")
GPU_MEMORY_GIB = 24.0
GPU_MEMORY_NOTE = ("estimate, not measured: an SDXL-size UNet with the LAR-Gen branches, two CLIP encoders and "
                   "the IP-Adapter, sampled at 1024 x 1024")


def checklist(config):
    """[item, problem or None] for every ``ms://`` file of the model yaml and the checkpoint's folder."""
    import yaml

    model_yaml = _model_yaml(config)
    if not os.path.isfile(model_yaml):
        return [["LAR-Gen model yaml", f"LAR-Gen model yaml {model_yaml} not found (config key 'model_yaml')"]]
    with open(model_yaml, encoding="utf-8") as handle:
        settings = yaml.safe_load(handle) or {}
    ms_models = config.get("ms_models") or {}
    items = []
    for key, reference in _references(settings):
        path = local_path(reference, ms_models)
        model_id = reference[len(MODELSCOPE_PREFIX):].partition("@")[0]
        if path is None:
            problem = f"{key} = {reference}: map {model_id!r} to its local snapshot in config key 'ms_models'"
        else:
            problem = None if os.path.exists(path) else f"{key} = {reference}: {path} does not exist"
        items.append([f"{key} {path or reference}", problem])
    checkpoint = (settings.get("MODEL") or {}).get("PRETRAINED_MODEL")
    if isinstance(checkpoint, str):
        path = local_path(checkpoint, ms_models) if checkpoint.startswith(MODELSCOPE_PREFIX) else checkpoint
        folder = os.path.dirname(path) if path else None
        if folder and os.path.isdir(folder):
            items.append([f"writable {folder}", None if os.access(folder, os.W_OK) else
                          f"{folder} is not writable; the first load writes the split model files there"])
    return items


def load(config):
    import yaml

    checkout = config["checkout"]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    with open(_model_yaml(config), encoding="utf-8") as handle:
        settings = _resolve(yaml.safe_load(handle), config.get("ms_models") or {})
    scratch = tempfile.mkdtemp(prefix="fsmi-largen-")
    resolved_yaml = os.path.join(scratch, "largen_local.yaml")
    with open(resolved_yaml, "w", encoding="utf-8") as handle:
        yaml.safe_dump(settings, handle, sort_keys=False)
    from scepter.modules.inference.largen_inference import LargenInference
    from scepter.modules.utils.config import Config
    from scepter.modules.utils.file_system import FS
    from scepter.modules.utils.logger import get_logger

    FS.init_fs_client(Config(cfg_dict={"NAME": "LocalFs"}, load=False))
    model_config = Config(cfg_file=resolved_yaml, load=True)
    pipeline = LargenInference(logger=get_logger(name="fsmi-largen"))
    pipeline.init_from_cfg(model_config)
    return {"pipeline": pipeline, "config": config, "model_yaml": resolved_yaml}


def reference_mask(subject, subject_mask):
    """uint8 0/1 mask of the subject's own pixels; the whole image when the benchmark gives none."""
    if subject_mask is None or not np.any(subject_mask):
        return np.ones(subject.shape[:2], dtype=np.uint8)
    return np.asarray(subject_mask, dtype=bool).astype(np.uint8)


def edit(state, request, scene, mask, subject):
    import torch
    from scepter.studio.inference.inference_ui.largen_ui import LargenUI

    config = state["config"]
    size = int(config.get("output_size", 1024))
    if subject is None:
        task, reference, subject_mask = "Text_Guided_Inpainting", None, None
    else:
        task = config.get("subject_task", "Text_Subject_Guided_Inpainting")
        reference, subject_mask = subject, reference_mask(subject, request.get("subject_mask"))
    if request["op"] == "remove":
        prompt = config.get("remove_prompt", "background")
    else:
        prompt = config.get("prompt_template", "{label}").format(label=request["label"], instruction=request["instruction"])
    # data_preprocess_inpaint does not use ``self``; calling it unbound avoids building the gradio UI
    prepared = LargenUI.data_preprocess_inpaint(
        None, scene, mask.astype(np.uint8), reference, subject_mask,
        task == "Text_Subject_Guided_Inpainting", 1.3, size, size,
    )
    names = ("tar_image", "tar_mask", "masked_image", "ref_image", "ref_mask", "ref_clip", "base_image",
             "extra_sizes", "bbox_yyxx")
    kwargs = {f"largen_{name}": value for name, value in zip(names, prepared)}
    with torch.no_grad():
        result = state["pipeline"](
            {"prompt": prompt, "negative_prompt": config.get("negative_prompt", ""),
             # as the studio's input_init (gallery_ui.py l.157-183): both sizes are the output's, crop at 0, 0
             "original_size_as_tuple": [size, size], "target_size_as_tuple": [size, size],
             "crop_coords_top_left": [0, 0], "sample_steps": int(config.get("sample_steps", 50)),
             "guide_scale": float(config.get("guide_scale", 7.5))},
            largen_state=True, largen_task=task, largen_image_scale=float(config.get("image_scale", 1.0)),
            seed=int(request["seed"]), **kwargs,
        )
    # as the studio turns them into pictures (gallery_ui.py l.226-229): times 255, then truncated to uint8
    images = result["images"].float().clamp(0, 1) * 255
    return images[0].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
