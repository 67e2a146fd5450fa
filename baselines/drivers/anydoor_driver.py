"""AnyDoor driver (runs in the user's AnyDoor environment, cwd = the checkout of ali-vilab/AnyDoor).

Checked against ali-vilab/AnyDoor 44ca2b2. Entry point: ``run_inference.inference_single_image(
ref_image, ref_mask, tar_image, tar_mask, guidance_scale=5.0)``. Importing ``run_inference`` loads the
model named by ``configs/inference.yaml`` (``pretrained_model`` and ``config_file``, read relative to
the checkout) onto CUDA, once, as the official script does; ``config_file`` in turn names the DINOv2
weights (``cond_stage_config.weight``), which we check too.
Masks: the reference mask is the subject's true mask from the benchmark (``subject_mask``); AnyDoor
whitens the reference outside it and builds its high-frequency map from it, so a whole-image mask
would paste the subject's own background. Without one (older benchmarks) the whole subject image is
used. The free-shape target mask is reduced to its bounding box (AnyDoor places an object in a box;
the official code expands that box itself). Seeding: ``random``, ``numpy`` and ``torch``, as
``pytorch_lightning.seed_everything`` does.
"""

import os
import random
import sys

import numpy as np


def bounding_box_mask(mask):
    """uint8 0/1 mask that is 1 on the bounding box of the True pixels of ``mask``."""
    rows, columns = np.nonzero(mask)
    box = np.zeros(mask.shape, dtype=np.uint8)
    if rows.size:
        box[rows.min():rows.max() + 1, columns.min():columns.max() + 1] = 1
    return box


def reference_mask(subject, subject_mask):
    """uint8 0/1 mask of the subject's own pixels; the whole image when the benchmark gives none."""
    if subject_mask is None or not np.any(subject_mask):
        return np.ones(subject.shape[:2], dtype=np.uint8)
    return np.asarray(subject_mask, dtype=bool).astype(np.uint8)


def _settings(checkout):
    import yaml  # omegaconf, which the official code uses, depends on PyYAML

    with open(os.path.join(checkout, "configs", "inference.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


# What the pre-flight reads (see worker_main.py): the module the official code runs, and its GPU need.
ENTRY_FILES = ("run_inference.py",)
GPU_MEMORY_GIB = 16.0
GPU_MEMORY_NOTE = ("estimate, not measured: run_inference.py keeps the ControlNet-SD2.1 UNet and the DINOv2 "
                   "ViT-g/14 encoder in float32 on the GPU (about 10 GB of weights) plus sampling activations")


def checklist(config):
    """[item, problem or None] for every file the official code opens at import, nothing loaded."""
    checkout = config["checkout"]
    settings_path = os.path.join(checkout, "configs", "inference.yaml")
    if not os.path.isfile(settings_path):
        return [["configs/inference.yaml", f"{settings_path} is missing (AnyDoor's inference settings)"]]
    settings = _settings(checkout)
    items = []
    for key in ("pretrained_model", "config_file"):
        path = os.path.join(checkout, str(settings.get(key, "")))
        missing = not settings.get(key) or not os.path.isfile(path)
        items.append([f"{key} {path}", f"{key} {path} (set in configs/inference.yaml) does not exist" if missing else None])
    model_config = os.path.join(checkout, str(settings.get("config_file", "")))
    if os.path.isfile(model_config):
        import yaml

        with open(model_config, encoding="utf-8") as handle:
            model = yaml.safe_load(handle) or {}
        dinov2 = (((model.get("model") or {}).get("params") or {}).get("cond_stage_config") or {}).get("weight")
        if dinov2:
            path = os.path.join(checkout, dinov2)
            items.append([f"DINOv2 weights {path}", None if os.path.isfile(path) else
                          f"DINOv2 weights {path} (cond_stage_config.weight in {settings['config_file']}) do not exist"])
    return items


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)  # the official module reads ./configs/inference.yaml at import
    sys.path.insert(0, checkout)
    import run_inference  # noqa: E402  (official code; builds and loads the model)

    return {"module": run_inference, "guidance_scale": float(config.get("guidance_scale", 5.0))}


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)  # also seeds every CUDA device


def edit(state, request, scene, mask, subject):
    if subject is None:
        raise ValueError("AnyDoor needs a subject image; single-image cases have none (run with --kinds multi)")
    _seed_everything(int(request["seed"]))
    output = state["module"].inference_single_image(
        subject.copy(), reference_mask(subject, request.get("subject_mask")), scene.copy(), bounding_box_mask(mask),
        guidance_scale=state["guidance_scale"])
    return np.clip(np.asarray(output), 0, 255).astype(np.uint8)
