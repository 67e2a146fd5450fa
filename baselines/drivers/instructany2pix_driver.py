"""InstructAny2Pix driver (runs in the user's environment, cwd = the checkout of jacklishufan/InstructAny2Pix).

Entry point: ``instructany2pix.InstructAny2PixPipeline(ckpt=..., llm_folder=...)`` called as in the
official ``serve.py``: ``pipe(instruction, mm_data, alpha, h=[h0, h1, h2], norm, refinement,
num_inference_steps)`` -> (non_refined, refined, message); we keep the refined image. Multimodal
inputs are files referenced in the instruction by ``<video>`` tokens in the order of ``mm_data``
(serve.py replaces its ``[image1]`` marks this way); our ``instruction_template`` uses ``[scene]``
and ``[subject]`` marks. Defaults are serve.py's slider defaults. Seeding: ``torch.manual_seed``.
Mask: InstructAny2Pix has no mask input, so the mask is ignored. Sizes: the pipeline center-crops
its base image to a 1024 square, so we pad the scene to a square first (edge pixels), and cut the
scene's area out of the 1024 output and resize it back: the output covers the whole scene.
"""

import os
import sys
import tempfile

import numpy as np
from PIL import Image

DEFAULT_TEMPLATES = {"single": "[scene] {instruction}", "multi": "[scene] [subject] {instruction}"}


def load(config):
    checkout = config["checkout"]
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    ckpt = os.path.join(checkout, config.get("ckpt", "ckpts"))
    llm_folder = config.get("llm_folder", "llm")
    for path in (os.path.join(ckpt, llm_folder), os.path.join(ckpt, "sdxl"), os.path.join(ckpt, "imagebind_huge.pth"),
                 os.path.join(ckpt, "prior", "model.bin")):
        if not os.path.exists(path):
            raise FileNotFoundError(f"InstructAny2Pix needs {path} (the checkpoints of huggingface.co/jacklishufan/instructany2pix)")
    from instructany2pix import InstructAny2PixPipeline

    pipeline = InstructAny2PixPipeline(ckpt=ckpt, llm_folder=llm_folder)
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
    _, refined, _ = state["pipeline"](
        text, mm_data, alpha=float(config.get("alpha", 1.0)),
        h=[float(config.get("h0", 0.4)), float(config.get("h1", 0.6)), float(config.get("h2", 0.4))],
        norm=float(config.get("norm", 20.0)), refinement=float(config.get("refinement", 0.3)),
        num_inference_steps=int(config.get("num_inference_steps", 25)))
    side = square.shape[0]
    output = np.asarray(refined.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.uint8)
    height, width = scene.shape[:2]
    return output[top:top + height, left:left + width].copy()
