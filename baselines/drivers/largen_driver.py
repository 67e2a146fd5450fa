"""LAR-Gen driver (runs in the user's scepter environment, cwd = the checkout of modelscope/scepter).

Entry point: ``scepter.modules.inference.largen_inference.LargenInference``, built with
``init_from_cfg(Config(cfg_file=model_yaml))`` (the LAR-Gen model yaml of scepter's studio configs,
whose PRETRAINED_MODEL points at the local checkpoint) and called with ``largen_state=True`` and the
tensors that scepter's own ``LargenUI.data_preprocess_inpaint`` prepares (we call that function, so
the crop/pad/resize is the official one). Only the local file system is registered: nothing is
downloaded.

Tasks and mask conversion: multi-image cases use ``Text_Subject_Guided_Inpainting`` (config
``subject_task``; the official preprocessing fills the mask's bounding box for this task), single-image
cases ``Text_Guided_Inpainting`` with the free-shape mask as the inpainting mask as is. The scene is
cropped to a square around the mask's box expanded 1.3x, edited at ``output_size`` and pasted back
(the official ``crop_back``), so the output has the scene's size. The subject's mask covers the whole
subject image. Prompt: ``prompt_template`` ("{label}"), ``remove_prompt`` for remove cases.
"""

import os
import sys

import numpy as np


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    model_yaml = config.get("model_yaml")
    if not model_yaml or not os.path.isfile(model_yaml):
        raise FileNotFoundError(f"LAR-Gen model yaml {model_yaml!r} not found (config key 'model_yaml')")
    from scepter.modules.inference.largen_inference import LargenInference
    from scepter.modules.utils.config import Config
    from scepter.modules.utils.file_system import FS
    from scepter.modules.utils.logger import get_logger

    FS.init_fs_client(Config(cfg_dict={"NAME": "LocalFs"}, load=False))
    model_config = Config(cfg_file=model_yaml, load=True)
    pipeline = LargenInference(logger=get_logger(name="fsmi-largen"))
    pipeline.init_from_cfg(model_config)
    return {"pipeline": pipeline, "config": config}


def edit(state, request, scene, mask, subject):
    import torch
    from scepter.studio.inference.inference_ui.largen_ui import LargenUI

    config = state["config"]
    size = int(config.get("output_size", 1024))
    if subject is None:
        task, reference, reference_mask = "Text_Guided_Inpainting", None, None
    else:
        task = config.get("subject_task", "Text_Subject_Guided_Inpainting")
        reference, reference_mask = subject, np.ones(subject.shape[:2], dtype=np.uint8)
    if request["op"] == "remove":
        prompt = config.get("remove_prompt", "background")
    else:
        prompt = config.get("prompt_template", "{label}").format(label=request["label"], instruction=request["instruction"])
    # data_preprocess_inpaint does not use ``self``; calling it unbound avoids building the gradio UI
    prepared = LargenUI.data_preprocess_inpaint(
        None, scene, mask.astype(np.uint8), reference, reference_mask,
        task == "Text_Subject_Guided_Inpainting", 1.3, size, size,
    )
    names = ("tar_image", "tar_mask", "masked_image", "ref_image", "ref_mask", "ref_clip", "base_image",
             "extra_sizes", "bbox_yyxx")
    kwargs = {f"largen_{name}": value for name, value in zip(names, prepared)}
    with torch.no_grad():
        result = state["pipeline"](
            {"prompt": prompt, "negative_prompt": config.get("negative_prompt", ""),
             "target_size_as_tuple": [size, size], "sample_steps": int(config.get("sample_steps", 50)),
             "guide_scale": float(config.get("guide_scale", 7.5))},
            largen_state=True, largen_task=task, largen_image_scale=float(config.get("image_scale", 1.0)),
            seed=int(request["seed"]), **kwargs,
        )
    image = result["images"][0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(image * 255.0).astype(np.uint8)
