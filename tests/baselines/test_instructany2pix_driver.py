"""InstructAny2Pix's driver, run through the worker protocol against a stand-in of
jacklishufan/InstructAny2Pix d11e49b.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fsmi_bench.errors import MissingWeightsError
from tests.support.official_checkouts import (
    LOGGER,
    cache_model,
    doctor,
    failing_lines,
    make_request,
    read_calls,
    run_requests,
    write_files,
)


def any2pix_checkout(root: Path, base_idx=0, gdino=True) -> tuple[Path, dict]:
    checkout = root / "InstructAny2Pix"
    ckpt = {"ckpts/llm-retrained/config.json": json.dumps({"base_idx": base_idx}),
            "ckpts/sdxl/ip_adapter_global_local_2_view.bin": "ip", "ckpts/prior/model.bin": "prior",
            "ckpts/imagebind_huge.pth": "imagebind"}
    if gdino:
        ckpt.update({"ckpts/gdino/sam_vit_h_4b8939.pth": "sam", "ckpts/gdino/gdino.pth": "gdino",
                     "ckpts/gdino/GroundingDINO_SwinT_OGC.py": "# config"})
    write_files(checkout, {
        **ckpt,
        "logger.py": LOGGER,
        "instructany2pix/__init__.py": "from .pipeline import InstructAny2PixPipeline\n",
        "instructany2pix/pipeline.py": '''
            import json, os
            from typing import Any
            from PIL import Image
            import groundingdino, segment_anything, imagebind  # imported at import, as the official package does
            from logger import log

            class _Pipe(object):
                scheduler = "sdxl"

            class InstructAny2PixPipeline:
                def __init__(self,ckpt='ckpts',llm_folder='llm-retrained') -> None:
                    self.settings = json.load(open(os.path.join(ckpt, llm_folder, 'config.json')))
                    for name in ('imagebind_huge.pth', 'prior/model.bin', 'gdino/sam_vit_h_4b8939.pth', 'gdino/gdino.pth',
                                 'gdino/GroundingDINO_SwinT_OGC.py', 'sdxl/ip_adapter_global_local_2_view.bin'):
                        open(os.path.join(ckpt, name)).close()
                    self.pipe, self.pipe_inversion = _Pipe(), _Pipe()
                    self.cache = None
                    log(event="load", ckpt=ckpt, llm_folder=llm_folder)

                def __call__(self, inst,mm_data,alpha = 0.7,h=[0.0,0.4,1.0],norm=20.0,refinement=0.5,llm_only=False,
                             num_inference_steps=25,use_cache=False,debug=False,diffusion_mode='default',
                             subject_strength=0.0,cfg=10,scale=1.0) -> Any:
                    base_img_path = mm_data[self.settings["base_idx"]]['fname']
                    self.cache = None, None, "a cup", base_img_path, {}
                    log(event="call", inst=inst, n_images=len(mm_data), alpha=alpha, h=h, norm=norm,
                        refinement=refinement, steps=num_inference_steps, subject_strength=subject_strength)
                    image = Image.open(base_img_path).convert("RGB").resize((1024, 1024))
                    return image, image, "SUCCESS!"
        ''',
    })
    site = root / "site-packages"
    write_files(site, {"groundingdino/__init__.py": "", "segment_anything/__init__.py": "", "imagebind/__init__.py": ""})
    cache = root / "hf-cache"
    for model_id in ("stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-xl-refiner-1.0"):
        cache_model(cache, model_id, {"model_index.json": "{}"})
    config = {"python": sys.executable, "checkout": str(checkout), "num_inference_steps": 4,
              "env": {"HF_HUB_CACHE": str(cache), "PYTHONPATH": str(site)}}
    return checkout, config


def test_instructany2pix_uses_the_released_llm_folder_and_the_subject_strength(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path)
    request = make_request()
    output, = run_requests(InstructAny2Pix(config), request)
    load, call = read_calls(checkout)
    assert load["llm_folder"] == "llm-retrained" and load["ckpt"] == str(checkout / "ckpts")
    assert call["subject_strength"] == 0.65 and call["steps"] == 4 and call["n_images"] == 2
    assert call["inst"] == "<video> <video> add the cup here"
    assert output.shape == request.scene.shape
    # the scene was the base image: its area is cut back out of the square output
    assert np.abs(output.astype(int) - request.scene.astype(int)).mean() < 40


def test_instructany2pix_when_the_model_picks_the_subject_as_base(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path, base_idx=1)
    request = make_request()
    output, = run_requests(InstructAny2Pix(config), request)
    from PIL import Image

    expected = np.asarray(Image.fromarray(request.subject).resize((1024, 1024)).resize((56, 40), Image.Resampling.BICUBIC))
    assert output.shape == request.scene.shape
    assert np.abs(output.astype(int) - expected.astype(int)).mean() < 8


def test_instructany2pix_missing_gdino_and_packages_fail_at_start_with_one_line(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path, gdino=False)
    config["env"] = {key: value for key, value in config["env"].items() if key != "PYTHONPATH"}
    with pytest.raises(MissingWeightsError) as caught:
        run_requests(InstructAny2Pix(config), make_request())
    message = str(caught.value)
    assert "sam_vit_h_4b8939.pth" in message and "gdino.pth" in message and "GroundingDINO_SwinT_OGC.py" in message
    assert "groundingdino" in message and "segment_anything" in message and "\n" not in message
    assert read_calls(checkout) == []



def test_doctor_names_a_missing_package_once(tmp_path):
    checkout, config = any2pix_checkout(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "site-packages" / "segment_anything")
    code, lines = doctor(config, tmp_path, "instructany2pix")
    failing = failing_lines(lines)
    assert code == 2 and len(failing) == 1 and "segment_anything" in failing[0], lines
    assert any(line.startswith("ok") and "official code instructany2pix/pipeline.py" in line for line in lines)
