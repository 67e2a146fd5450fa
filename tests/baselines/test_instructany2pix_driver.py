"""InstructAny2Pix's driver, run through the worker protocol against a stand-in of
jacklishufan/InstructAny2Pix d11e49b.

The stand-in's constructor opens, in the official order, every file the official one loads
(pipeline.py l.96-147): the prior with its hub models (prior/__init__.py, prior/model.py l.28-34, l.134,
l.187), SDXL base from its model_index.json without a variant (l.101), the LLM folder (l.22-37, l.117), the
ImageBind and prior weights (l.118-120), the SDXL refiner's fp16 variant (l.128-130), SAM and GroundingDINO
with the text encoder its config names (gdino/lib.py l.54-67; GroundingDINO's get_tokenlizer.py l.19, l.25),
the IP-Adapter's image encoder, twice (ip_adapter.py l.98-103 through l.143-144), and the LLM's vision tower
(llm/model/any2pix_arch.py l.35-37, clip_encoder.py l.23-24). Hub files are read from the local cache as
``from_pretrained`` does offline (``hf_hub_download(..., local_files_only=True)``, safetensors first).
``__call__`` keeps the official flow (l.303-386): ``forward_llm`` returns Nones when the answer has no
``<im_gen>`` (l.217-221), ``self.cache`` is set before the first use of the embeddings (l.310-313), the base
image is centre-cropped to 1024 (``loas_base_img``, l.289-293 with ``resize_and_crop``, l.41-88). What the
LLM says is learned, not code: the test scripts it in ``scripted_llm.json`` (whether it emits ``<im_gen>``,
and which input it names as ``<base>``). The stand-in's "diffusion" inverts the base crop.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from baselines.worker_protocol import DRIVERS_DIR, WorkerFailure
from fsmi_bench.errors import MissingWeightsError
from tests.support.official_checkouts import (
    LOGGER,
    cache_model,
    cached_file,
    doctor,
    failing_lines,
    make_request,
    read_calls,
    run_requests,
    write_files,
)

SDXL_BASE, SDXL_REFINER = "stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-xl-refiner-1.0"
# model_index.json of the two SDXL repositories as on the hub (the refiner has no first text encoder)
BASE_INDEX = {"_class_name": "StableDiffusionXLPipeline", "scheduler": ["diffusers", "EulerDiscreteScheduler"],
              "text_encoder": ["transformers", "CLIPTextModel"],
              "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
              "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
REFINER_INDEX = {**BASE_INDEX, "_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
                 "tokenizer": [None, None]}


def _pipeline_cache(index: dict, variant: str | None) -> dict[str, str]:
    files = {"model_index.json": json.dumps(index)}
    tag = f".{variant}" if variant else ""
    for name, spec in index.items():
        library, class_name = (None, None) if name.startswith("_") else spec
        if library is None:
            continue
        if class_name.endswith("Tokenizer"):
            files.update({f"{name}/vocab.json": "{}", f"{name}/merges.txt": ""})
        elif class_name.endswith("Scheduler"):
            files[f"{name}/scheduler_config.json"] = "{}"
        else:
            stem = "model" if library == "transformers" else "diffusion_pytorch_model"
            files.update({f"{name}/config.json": "{}", f"{name}/{stem}{tag}.safetensors": "w"})
    return files


# every hub file the official constructor opens, with the official line that loads it
HUB_FILES = {
    SDXL_BASE: _pipeline_cache(BASE_INDEX, None),  # pipeline.py l.101; its scheduler: prior/model.py l.134
    SDXL_REFINER: _pipeline_cache(REFINER_INDEX, "fp16"),  # pipeline.py l.128-130, variant="fp16"
    "h94/IP-Adapter": {"models/image_encoder/config.json": "{}",  # ip_adapter.py l.99-100
                       "models/image_encoder/model.safetensors": "w"},
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": {"tokenizer_config.json": "{}", "vocab.json": "{}", "merges.txt": "",
                                              "config.json": "{}", "model.safetensors": "w"},  # prior/model.py l.29-34
    "gpt2-medium": {"config.json": "{}"},  # prior/model.py l.187, pretrained_name in prior/__init__.py
    "bert-base-uncased": {"tokenizer_config.json": "{}", "vocab.txt": "", "config.json": "{}",  # get_tokenlizer.py
                          "model.safetensors": "w"},
    "openai/clip-vit-large-patch14": {"preprocessor_config.json": "{}", "config.json": "{}",  # clip_encoder.py l.23-24
                                      "model.safetensors": "w"},
}
LOCAL_FILES = ("ckpts/llm-retrained/config.json", "ckpts/llm-retrained/model.safetensors",
               "ckpts/llm-retrained/tokenizer/tokenizer_config.json", "ckpts/imagebind_huge.pth",
               "ckpts/prior/model.bin", "ckpts/gdino/sam_vit_h_4b8939.pth", "ckpts/gdino/gdino.pth",
               "ckpts/gdino/GroundingDINO_SwinT_OGC.py", "ckpts/sdxl/ip_adapter_global_local_2_view.bin")

PIPELINE = '''
import json, os, re
from typing import Any
import numpy as np
import torch
from PIL import Image
from imagebind import data as image_bind_data
from imagebind import imagebind_model
from .gdino.lib import build_segmentator
from logger import log

def hub(repo_id, *names):
    """The first of ``names`` in the local cache, as from_pretrained reads a model offline."""
    from huggingface_hub import hf_hub_download
    for name in names[:-1]:
        try:
            return hf_hub_download(repo_id, name, local_files_only=True)
        except Exception:
            pass
    return hf_hub_download(repo_id, names[-1], local_files_only=True)

def from_pretrained(repo_id, variant=None):
    """DiffusionPipeline.from_pretrained: model_index.json, then each component it lists."""
    index = json.load(open(hub(repo_id, "model_index.json")))
    tag = "." + variant if variant else ""
    for name, spec in index.items():
        if name.startswith("_") or spec[0] is None:
            continue
        if spec[1].endswith("Tokenizer"):
            hub(repo_id, name + "/vocab.json"), hub(repo_id, name + "/merges.txt")
        elif spec[1].endswith("Scheduler"):
            hub(repo_id, name + "/scheduler_config.json")
        else:
            stem = "model" if spec[0] == "transformers" else "diffusion_pytorch_model"
            hub(repo_id, name + "/config.json")
            weights = [name + "/" + stem + tag + ".safetensors"] + ([] if variant else [name + "/" + stem + ".bin"])
            hub(repo_id, *weights)

def centre_square(img, size):
    """resize_and_crop(img, (size, size), 'middle'): the short side scaled to size, the middle kept."""
    width, height = img.size
    if width > height:
        img = img.resize((int(size * width / height), size))
        return img.crop(((img.size[0] - size) / 2, 0, (img.size[0] + size) / 2, size))
    if height > width:
        img = img.resize((size, int(size * height / width)))
        return img.crop((0, (img.size[1] - size) / 2, size, (img.size[1] + size) / 2))
    return img.resize((size, size))

class _Pipe(object):
    scheduler = "sdxl"

class InstructAny2PixPipeline:
    def __init__(self,ckpt='ckpts',llm_folder='llm-retrained') -> None:
        hub("stabilityai/stable-diffusion-xl-base-1.0", "scheduler/scheduler_config.json")  # the prior's
        hub("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "tokenizer_config.json"), hub(
            "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "vocab.json"), hub(
            "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "merges.txt")
        hub("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "config.json"), hub(
            "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "model.safetensors", "pytorch_model.bin")
        hub("gpt2-medium", "config.json")
        from_pretrained("stabilityai/stable-diffusion-xl-base-1.0")
        llm = os.path.join(ckpt, llm_folder)
        open(os.path.join(llm, "tokenizer", "tokenizer_config.json")).close()
        llm_config = json.load(open(os.path.join(llm, "config.json")))
        open(os.path.join(llm, "model.safetensors")).close()
        if "mm_vision_tower" in llm_config:
            tower = llm_config["mm_vision_tower"]
            hub(tower, "preprocessor_config.json"), hub(tower, "config.json")
            hub(tower, "model.safetensors", "pytorch_model.bin")
        open(os.path.join(ckpt, 'imagebind_huge.pth')).close()
        open(os.path.join(ckpt, 'prior/model.bin')).close()
        self.pipe, self.pipe_inversion = _Pipe(), _Pipe()
        from_pretrained("stabilityai/stable-diffusion-xl-refiner-1.0", variant="fp16")
        self.cache = None
        self.sam, self.gdino = build_segmentator(ckpt)
        open(os.path.join(ckpt, 'sdxl/ip_adapter_global_local_2_view.bin')).close()
        for _ in range(2):
            hub("h94/IP-Adapter", "models/image_encoder/config.json")
            hub("h94/IP-Adapter", "models/image_encoder/model.safetensors", "models/image_encoder/pytorch_model.bin")
        log(event="load", ckpt=ckpt, llm_folder=llm_folder)

    def forward_llm(self, inst, mm_data=[], use_cache=False):
        script = json.load(open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripted_llm.json")))
        answer = script["answer"]
        if "<im_gen>" not in answer:
            return None, None, answer.split("ASSISTANT:")[-1], None, None
        base_idx = 0 if len(mm_data) == 1 else script["base"]
        caption = re.compile(r"\\[([^\\]]+)\\]").findall(answer)[0]
        return torch.ones(1, 8), torch.ones(8), caption, mm_data[base_idx]["fname"], {}

    def loas_base_img(self, base_img_path):
        return centre_square(Image.open(base_img_path), 1024).resize((1024, 1024))

    def __call__(self, inst,mm_data,alpha = 0.7,h=[0.0,0.4,1.0],norm=20.0,refinement=0.5,llm_only=False,
                 num_inference_steps=25,use_cache=False,debug=False,diffusion_mode='default',subject_strength=0.0,
                 cfg=10,scale=1.0) -> Any:
        image_embeds,base_embed,output_caption,base_img_path,extra_data = self.forward_llm(inst,mm_data)
        self.cache = image_embeds,base_embed,output_caption,base_img_path,extra_data
        image_embeds.norm()  # the prior's input (l.313): fails when forward_llm found no <im_gen>
        img_base = self.loas_base_img(base_img_path)
        log(event="call", inst=inst, images=[[r["type"], r["fname"], list(Image.open(r["fname"]).size)]
                                             for r in mm_data], alpha=alpha, h=h, norm=norm, refinement=refinement,
            steps=num_inference_steps, subject_strength=subject_strength, cfg=cfg, scale=scale)
        image = Image.fromarray(255 - np.asarray(img_base.convert("RGB")))
        return image, image, "SUCCESS!"
'''


def any2pix_checkout(root: Path, base=1, im_gen=True, gdino=True) -> tuple[Path, dict]:
    checkout = root / "InstructAny2Pix"
    local = {name: "w" for name in LOCAL_FILES}
    local["ckpts/llm-retrained/config.json"] = json.dumps({"model_type": "llama",
                                                           "mm_vision_tower": "openai/clip-vit-large-patch14"})
    local["ckpts/gdino/GroundingDINO_SwinT_OGC.py"] = 'batch_size = 1\ntext_encoder_type = "bert-base-uncased"\n'
    if not gdino:
        for name in ("sam_vit_h_4b8939.pth", "gdino.pth", "GroundingDINO_SwinT_OGC.py"):
            del local[f"ckpts/gdino/{name}"]
    answer = "Absolutely,<base>[a table]<im_gen>[a table with a cup]</s>" if im_gen else "I cannot do that.</s>"
    write_files(checkout, {
        **local,
        "logger.py": LOGGER,
        "scripted_llm.json": json.dumps({"answer": answer, "base": base}),
        "instructany2pix/__init__.py": "from .pipeline import InstructAny2PixPipeline\n",
        "instructany2pix/pipeline.py": PIPELINE,
        "instructany2pix/gdino/__init__.py": "",
        "instructany2pix/gdino/lib.py": '''
            import os
            import groundingdino.util.inference
            def build_segmentator(ckpt='./ckpts'):
                import segment_anything
                open(os.path.join(ckpt, "gdino/sam_vit_h_4b8939.pth")).close()
                return "sam", groundingdino.util.inference.load_model(
                    os.path.join(ckpt, "gdino/GroundingDINO_SwinT_OGC.py"), os.path.join(ckpt, "gdino/gdino.pth"))
        ''',
    })
    site = root / "site-packages"
    write_files(site, {
        "segment_anything/__init__.py": "", "imagebind/__init__.py": "", "imagebind/data.py": "",
        "imagebind/imagebind_model.py": "", "bitsandbytes/__init__.py": "", "groundingdino/__init__.py": "",
        "groundingdino/util/__init__.py": "",
        # load_model reads text_encoder_type from the config, then AutoTokenizer and BertModel load it by hub id
        "groundingdino/util/inference.py": '''
            import ast
            from huggingface_hub import hf_hub_download
            def load_model(model_config_path, model_checkpoint_path, device="cuda"):
                config = {node.targets[0].id: ast.literal_eval(node.value)
                          for node in ast.parse(open(model_config_path).read()).body if isinstance(node, ast.Assign)}
                for name in ("tokenizer_config.json", "vocab.txt", "config.json", "model.safetensors"):
                    hf_hub_download(config["text_encoder_type"], name, local_files_only=True)
                open(model_checkpoint_path).close()
                return "gdino"
        ''',
    })
    cache = root / "hf-cache"
    for repo_id, files in HUB_FILES.items():
        cache_model(cache, repo_id, files)
    config = {"python": sys.executable, "checkout": str(checkout),
              "env": {"HF_HUB_CACHE": str(cache), "PYTHONPATH": str(site)}}
    return checkout, config


def _driver():
    spec = importlib.util.spec_from_file_location("any2pix_driver", DRIVERS_DIR / "instructany2pix_driver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smooth_scene(height=40, width=56):
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([rows * 5, columns * 4, 100 + rows + columns], -1).astype(np.uint8)


def test_instructany2pix_gets_the_media_inside_the_sentence_and_the_scene_as_it_is(tmp_path):
    # serve.py l.20-36 and scripts/train.md l.18: "add [an image of ...] to [...]", marks -> <video> in order
    checkout, config = any2pix_checkout(tmp_path)
    from baselines.instructany2pix import InstructAny2Pix

    request = make_request()
    output, = run_requests(InstructAny2Pix(config), request)
    load, call = read_calls(checkout)
    assert load["llm_folder"] == "llm-retrained" and load["ckpt"] == str(checkout / "ckpts")
    assert call["inst"] == "add <video> to <video>"
    (subject_type, subject_file, subject_size), (scene_type, scene_file, scene_size) = call["images"]
    assert subject_file.endswith("subject.png") and scene_file.endswith("scene.png")
    assert subject_size == [16, 20] and scene_size == [56, 40]  # the scene itself, not padded to a square
    assert output.shape == request.scene.shape


def test_instructany2pix_runs_with_the_pipelines_own_defaults(tmp_path):
    # InstructAny2PixPipeline.__call__'s defaults, pipeline.py l.303-304
    checkout, config = any2pix_checkout(tmp_path)
    from baselines.instructany2pix import InstructAny2Pix

    run_requests(InstructAny2Pix(config), make_request(with_subject=False))
    call = read_calls(checkout)[1]
    assert {key: call[key] for key in ("alpha", "h", "norm", "refinement", "steps", "subject_strength", "cfg",
                                       "scale")} == {"alpha": 0.7, "h": [0.0, 0.4, 1.0], "norm": 20.0,
                                                     "refinement": 0.5, "steps": 25, "subject_strength": 0.0,
                                                     "cfg": 10.0, "scale": 1.0}
    assert call["inst"] == "add a cup to <video>"


def test_instructany2pix_output_is_pasted_where_the_official_centre_crop_was(tmp_path):
    # loas_base_img, pipeline.py l.289-293: the middle 1024 square of the scene scaled to a 1024 short side
    checkout, config = any2pix_checkout(tmp_path)
    from baselines.instructany2pix import InstructAny2Pix

    scene = _smooth_scene()
    output, = run_requests(InstructAny2Pix(config), make_request(scene=scene))
    # 56 x 40 -> 1433 x 1024, crop from x = round(204.5) = 204, that is column 8 of the scene, 40 wide
    np.testing.assert_array_equal(output[:, :8], scene[:, :8])
    np.testing.assert_array_equal(output[:, 48:], scene[:, 48:])
    inside = np.abs(output[:, 8:48].astype(int) - (255 - scene[:, 8:48].astype(int)))
    assert inside.mean() < 3, inside.mean()  # the stand-in's output (the inverted crop), back in its place


def test_instructany2pix_when_the_model_picks_the_subject_as_base(tmp_path):
    checkout, config = any2pix_checkout(tmp_path, base=0)
    from baselines.instructany2pix import InstructAny2Pix

    request = replace(make_request(), subject=np.full((20, 16, 3), 200, dtype=np.uint8))
    output, = run_requests(InstructAny2Pix(config), request)
    assert output.shape == request.scene.shape
    assert (np.abs(output.astype(int) - 55) <= 1).all()  # the inverted subject over the whole scene


def test_instructany2pix_answer_without_im_gen_fails_the_case_with_what_the_llm_said(tmp_path):
    # forward_llm returns Nones without <im_gen> (pipeline.py l.217-221); __call__ then fails at l.313
    checkout, config = any2pix_checkout(tmp_path, im_gen=False)
    from baselines.instructany2pix import InstructAny2Pix

    with pytest.raises(WorkerFailure) as caught:
        run_requests(InstructAny2Pix(config), make_request())
    message = str(caught.value)
    assert "<im_gen>" in message and "I cannot do that." in message and "add <video> to <video>" in message


def test_instructany2pix_preflight_passes_exactly_what_the_constructor_loads(tmp_path):
    checkout, config = any2pix_checkout(tmp_path)
    code, lines = doctor(config, tmp_path, "instructany2pix")
    assert code == 0 and lines[-1] == "instructany2pix: ready", lines
    for repo_id in HUB_FILES:
        assert any(line.startswith("ok") and f"hub model {repo_id}" in line for line in lines), repo_id
    from baselines.instructany2pix import InstructAny2Pix

    run_requests(InstructAny2Pix(config), make_request())  # the stand-in's constructor opens every one of them
    assert read_calls(checkout)[0]["event"] == "load"


MISSING = [(repo_id, name) for repo_id, files in HUB_FILES.items() for name in files] + \
          [(None, name) for name in LOCAL_FILES]


@pytest.mark.parametrize("repo_id, name", MISSING, ids=[f"{repo or 'local'}:{name}" for repo, name in MISSING])
def test_instructany2pix_preflight_names_each_missing_model_file(tmp_path, monkeypatch, repo_id, name):
    import huggingface_hub.constants

    checkout, config = any2pix_checkout(tmp_path)
    (cached_file(tmp_path / "hf-cache", repo_id, name) if repo_id else checkout / name).unlink()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    problems = [problem for _, problem in _driver().checklist({**config, "checkout": str(checkout)}) if problem]
    assert len(problems) == 1 and Path(name).name in problems[0], problems
    assert repo_id is None or repo_id in problems[0]


@pytest.mark.parametrize("templates, named", [({"multi_add": "add [subject] here"}, "[scene]"),
                                              ({"single_add": "add [subject] to [scene]"}, "no [subject]"),
                                              ({"multi_remove": "[scene]"}, "unknown key")])
def test_instructany2pix_bad_instruction_templates_are_named_before_loading(tmp_path, templates, named):
    checkout, config = any2pix_checkout(tmp_path)
    code, lines = doctor({**config, "instruction_templates": templates}, tmp_path, "instructany2pix")
    failing = failing_lines(lines)
    assert code == 2 and len(failing) == 1 and named in failing[0], lines


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
