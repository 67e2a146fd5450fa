"""LAR-Gen's driver, run through the worker protocol against a stand-in of modelscope/scepter 9f5b439.

The stand-in keeps scepter's module paths, names and signatures, and what the driver relies on: only the
file systems registered with ``FS.init_fs_client`` are served (LocalFs knows no ``ms://``), and
``LargenUI.data_preprocess_inpaint`` is called unbound (building the UI would start gradio). The call's
settings are the yaml's ``DEFAULT_PARAS.INPUT`` (lower-cased, diffusion_inference.py l.323-328) updated
with the caller's input (largen_inference.py l.134-135), so a setting the caller leaves out keeps the yaml's
value. The studio fills ``original_size_as_tuple`` and ``target_size_as_tuple`` with the output size and
``crop_coords_top_left`` with [0, 0] (gallery_ui.py l.157-183), and turns the [0, 1] images into uint8 by
``(images * 255)...astype(np.uint8)``: truncation (gallery_ui.py l.226-229).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fsmi_bench.errors import MissingWeightsError
from tests.support.official_checkouts import LOGGER, make_request, read_calls, run_requests, write_files

LARGEN_YAML = """
NAME: LARGEN
IS_DEFAULT: False
DEFAULT_PARAS:
  INPUT:
    ORIGINAL_SIZE_AS_TUPLE: [1024, 1024]
    TARGET_SIZE_AS_TUPLE: [1024, 1024]
    CROP_COORDS_TOP_LEFT: [0, 0]
    SAMPLE: ddim
    SAMPLE_STEPS: 50
    GUIDE_SCALE: 7.5
    GUIDE_RESCALE: 0.5
    DISCRETIZATION: trailing
MODEL:
  PRETRAINED_MODEL: ms://iic/LARGEN@models/largen_ckpt_s22k.pth
  DIFFUSION_MODEL:
    NAME: LargenUNetXL
    PRETRAINED_MODEL:
  COND_STAGE_MODEL:
    NAME: GeneralConditioner
    EMBEDDERS:
      -
        NAME: FrozenCLIPEmbedder
        PRETRAINED_MODEL: ms://AI-ModelScope/clip-vit-large-patch14
        TOKENIZER_PATH: ms://AI-ModelScope/clip-vit-large-patch14
      -
        NAME: IPAdapterPlusEmbedder
        CLIP_DIR: ms://iic/LARGEN@models/clip_encoder/
        PRETRAINED_MODEL: ms://iic/LARGEN@models/ip-adapter-plus_sdxl_vit-h.bin
"""


def largen_checkout(root: Path) -> tuple[Path, dict]:
    checkout = root / "scepter"
    write_files(checkout, {
        "scepter/__init__.py": "", "scepter/modules/__init__.py": "", "scepter/modules/inference/__init__.py": "",
        "scepter/modules/utils/__init__.py": "", "scepter/studio/__init__.py": "",
        "scepter/studio/inference/__init__.py": "", "scepter/studio/inference/inference_ui/__init__.py": "",
        "scepter/methods/studio/inference/largen/largen_pro.yaml": LARGEN_YAML,
        "scepter/logger.py": LOGGER.replace("os.path.dirname(os.path.abspath(__file__))",
                                            "os.path.dirname(os.path.dirname(os.path.abspath(__file__)))"),
        "scepter/modules/utils/logger.py": "import logging\ndef get_logger(name='scepter'):\n"
                                           "    return logging.getLogger(name)\n",
        "scepter/modules/utils/config.py": '''
            import yaml
            class Config(dict):
                def __init__(self, cfg_dict=None, load=True, cfg_file=None, logger=None, parser_ins=None):
                    super().__init__(yaml.safe_load(open(cfg_file)) if cfg_file else (cfg_dict or {}))
                def __getattr__(self, key):
                    value = self[key]
                    return Config(cfg_dict=value, load=False) if isinstance(value, dict) else value
        ''',
        # only the file systems registered with init_fs_client are served: LocalFs knows no ms://
        "scepter/modules/utils/file_system.py": '''
            import os
            class _FS:
                clients = []
                def init_fs_client(self, cfg=None, logger=None):
                    self.clients.append(cfg["NAME"])
                def isfile(self, path):
                    if "://" in path:
                        raise RuntimeError(f"no file system registered for {path}")
                    return os.path.isfile(path)
            FS = _FS()
        ''',
        "scepter/modules/inference/largen_inference.py": '''
            import copy
            import torch
            from scepter.logger import log
            from scepter.modules.utils.file_system import FS

            def _walk(node):
                if isinstance(node, dict):
                    for value in node.values():
                        yield from _walk(value)
                elif isinstance(node, list):
                    for value in node:
                        yield from _walk(value)
                elif isinstance(node, str):
                    yield node

            class LargenInference(object):
                def __init__(self, logger=None):
                    self.logger = logger
                def init_from_cfg(self, cfg):
                    self.input = {k.lower(): v for k, v in cfg.DEFAULT_PARAS.INPUT.items()}
                    assert FS.isfile(cfg.MODEL.PRETRAINED_MODEL)
                    embedders = cfg.MODEL.COND_STAGE_MODEL["EMBEDDERS"]
                    keys = ("PRETRAINED_MODEL", "TOKENIZER_PATH", "CLIP_DIR")
                    for path in [e.get(k) for e in embedders for k in keys]:
                        if path:
                            assert "://" not in path and __import__("os").path.exists(path), path
                    with open(cfg.MODEL.PRETRAINED_MODEL) as handle:
                        log(event="load", fs=FS.clients, checkpoint=cfg.MODEL.PRETRAINED_MODEL, bytes=handle.read(),
                            paths=sorted(p for p in _walk(dict(cfg)) if "/" in p))
                def __call__(self, input, num_samples=1, intermediate_callback=None, refine_strength=0,
                             img_to_img_strength=0, cat_uc=True, tuner_model=None, control_model=None,
                             largen_state=False, **kwargs):
                    assert largen_state, "LARGEN model must be used with LAR-Gen settings"
                    value_input = copy.deepcopy(self.input)
                    value_input.update(input)
                    ref_mask = kwargs.get("largen_ref_mask")
                    log(event="call", input=input, settings=value_input, task=kwargs["largen_task"],
                        seed=kwargs["seed"], image_scale=kwargs["largen_image_scale"],
                        ref_mask=None if ref_mask is None else ref_mask.tolist())
                    # a zero latent decodes to 0.5 grey (l.289); crop_back pastes it into the scene (l.290-296)
                    images = kwargs["largen_base_image"].clone()
                    y1, y2, x1, x2 = kwargs["largen_bbox_yyxx"].tolist()
                    images[:, y1:y2, x1:x2] = 0.5
                    return {"images": images.unsqueeze(0)}
        ''',
        "scepter/studio/inference/inference_ui/largen_ui.py": '''
            import numpy as np
            import torch
            class LargenUI(object):
                def __init__(self, cfg, pipe_manager, is_debug=False, language='en'):
                    raise RuntimeError("builds the gradio UI")
                def data_preprocess_inpaint(self, tar_image, tar_mask, ref_image, ref_mask,
                                            use_rectangle_mask, tar_crop_ratio,
                                            output_height, output_width):
                    as_tensor = lambda array: torch.from_numpy(np.ascontiguousarray(array)).float()
                    base = as_tensor(tar_image).permute(2, 0, 1) / 255.0
                    ref = None if ref_mask is None else as_tensor(ref_mask)
                    rows, cols = np.nonzero(tar_mask)
                    box = [rows.min(), rows.max() + 1, cols.min(), cols.max() + 1]
                    return (base, as_tensor(tar_mask), base, None, ref, None, base,
                            torch.LongTensor([0, 0, 0, 0, 0, 0]), torch.LongTensor(box))
        ''',
    })
    models = root / "modelscope"
    write_files(models, {"iic/LARGEN/models/largen_ckpt_s22k.pth": "largen-weights",
                         "iic/LARGEN/models/clip_encoder/config.json": "{}",
                         "iic/LARGEN/models/ip-adapter-plus_sdxl_vit-h.bin": "ip",
                         "AI-ModelScope/clip-vit-large-patch14/config.json": "{}"})
    ms_models = {"iic/LARGEN": str(models / "iic" / "LARGEN"),
                 "AI-ModelScope/clip-vit-large-patch14": str(models / "AI-ModelScope" / "clip-vit-large-patch14")}
    return checkout, ms_models


def test_largen_resolves_every_ms_reference_to_the_users_snapshots(tmp_path):
    from baselines.largen import Largen

    checkout, ms_models = largen_checkout(tmp_path)
    method = Largen({"python": sys.executable, "checkout": str(checkout), "ms_models": ms_models,
                     "sample_steps": 7, "output_size": 64})
    checkpoint = str(Path(ms_models["iic/LARGEN"]) / "models" / "largen_ckpt_s22k.pth")
    assert method.weights() == {"largen": checkpoint}
    multi, single = make_request(), make_request(with_subject=False)
    outputs = run_requests(method, multi, single)
    load, call_multi, call_single = read_calls(checkout)
    assert load["fs"] == ["LocalFs"] and load["checkpoint"] == checkpoint and load["bytes"] == "largen-weights"
    assert not any(path.startswith("ms://") for path in load["paths"])
    assert str(Path(ms_models["AI-ModelScope/clip-vit-large-patch14"])) in load["paths"]
    assert call_multi["task"] == "Text_Subject_Guided_Inpainting" and call_single["task"] == "Text_Guided_Inpainting"
    np.testing.assert_array_equal(np.array(call_multi["ref_mask"], dtype=bool), multi.subject_mask)
    assert call_single["ref_mask"] is None
    assert call_multi["input"]["sample_steps"] == 7 and call_multi["input"]["prompt"] == "cup"
    assert call_multi["seed"] == multi.seed
    box = np.zeros(multi.mask.shape, dtype=bool)
    box[10:22, 14:30] = True
    for output, request in zip(outputs, (multi, single)):  # the stitched base image, the mask's box made grey
        np.testing.assert_array_equal(output[~box], request.scene[~box])


def test_largen_sizes_and_pixels_as_the_studio_makes_them(tmp_path):
    # gallery_ui.py l.157-183: original and target size = the output size, crop at [0, 0];
    # l.226-229: (images * 255).astype(np.uint8), so 0.5 grey is 127, not 128
    from baselines.largen import Largen

    checkout, ms_models = largen_checkout(tmp_path)
    method = Largen({"python": sys.executable, "checkout": str(checkout), "ms_models": ms_models, "output_size": 64})
    request = make_request(with_subject=False)
    output, = run_requests(method, request)
    settings = read_calls(checkout)[1]["settings"]
    assert settings["original_size_as_tuple"] == [64, 64] and settings["target_size_as_tuple"] == [64, 64]
    assert settings["crop_coords_top_left"] == [0, 0]
    assert (output[10:22, 14:30] == 127).all()


def test_largen_unmapped_ms_reference_fails_at_start_naming_the_key(tmp_path):
    from baselines.largen import Largen

    checkout, ms_models = largen_checkout(tmp_path)
    del ms_models["AI-ModelScope/clip-vit-large-patch14"]
    method = Largen({"python": sys.executable, "checkout": str(checkout), "ms_models": ms_models})
    with pytest.raises(MissingWeightsError) as caught:
        run_requests(method, make_request())
    message = str(caught.value)
    assert "TOKENIZER_PATH" in message and "'AI-ModelScope/clip-vit-large-patch14'" in message
    assert "ms_models" in message and "\n" not in message and "Traceback" not in message
    assert read_calls(checkout) == []
