"""AnyDoor driver (runs in the user's AnyDoor environment, cwd = the checkout of ali-vilab/AnyDoor).

Entry point: ``run_inference.inference_single_image(ref_image, ref_mask, tar_image, tar_mask,
guidance_scale=5.0)``. Importing ``run_inference`` loads the model named by ``configs/inference.yaml``
(``pretrained_model`` and ``config_file``) onto CUDA, once, as the official script does.
Mask conversion: AnyDoor places the object in a box, so the free-shape mask is reduced to its
bounding box (the official code then expands that box itself). The reference mask covers the whole
subject image (the benchmark gives no subject mask). Seeding: ``pytorch_lightning.seed_everything``.
"""

import os
import sys

import numpy as np


def bounding_box_mask(mask):
    """uint8 0/1 mask that is 1 on the bounding box of the True pixels of ``mask``."""
    rows, columns = np.nonzero(mask)
    box = np.zeros(mask.shape, dtype=np.uint8)
    if rows.size:
        box[rows.min():rows.max() + 1, columns.min():columns.max() + 1] = 1
    return box


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)  # the official module reads ./configs/inference.yaml at import
    sys.path.insert(0, checkout)
    settings_path = os.path.join(checkout, "configs", "inference.yaml")
    if not os.path.isfile(settings_path):
        raise FileNotFoundError(f"{settings_path} is missing (AnyDoor's inference settings)")
    from omegaconf import OmegaConf

    settings = OmegaConf.load(settings_path)
    for key in ("pretrained_model", "config_file"):
        path = os.path.join(checkout, str(settings[key]))
        if not os.path.exists(path):
            raise FileNotFoundError(f"AnyDoor {key} {path} (set in configs/inference.yaml) does not exist")
    import run_inference  # noqa: E402  (official code; builds and loads the model)

    return {"module": run_inference, "guidance_scale": float(config.get("guidance_scale", 5.0))}


def edit(state, request, scene, mask, subject):
    if subject is None:
        raise ValueError("AnyDoor needs a subject image; single-image cases have none (run with --kinds multi)")
    from pytorch_lightning import seed_everything

    seed_everything(int(request["seed"]))
    reference_mask = np.ones(subject.shape[:2], dtype=np.uint8)
    output = state["module"].inference_single_image(
        subject.copy(), reference_mask, scene.copy(), bounding_box_mask(mask), guidance_scale=state["guidance_scale"]
    )
    return np.clip(np.asarray(output), 0, 255).astype(np.uint8)
