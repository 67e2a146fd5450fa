"""Each official-code driver's real ``load`` and ``edit``, run through the worker protocol against a
stand-in checkout written here.

A stand-in mirrors the official repository's module paths, class and function names, signatures and
return types (checked at AnyDoor 44ca2b2, scepter 9f5b439, SmartEdit a65f126, InstructAny2Pix
d11e49b) and the released checkpoints' folder layout, with tiny files instead of models. It logs what
it was given to ``calls.jsonl`` so the tests can check that what the user configured is what is used.
Helper models loaded by hub id live in a Hugging Face cache folder laid out as the hub client writes it.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from baselines.worker_protocol import DRIVERS_DIR, OFFLINE_ENV
from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.run.method import EditRequest

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))


def _cache_model(cache: Path, repo_id: str, files: dict[str, str]) -> None:
    """A model in a hub cache folder as huggingface_hub lays it out (refs/main -> snapshots/<hash>/)."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    _write(folder, {"refs/main": SNAPSHOT, **{f"snapshots/{SNAPSHOT}/{name}": text for name, text in files.items()}})


def _calls(checkout: Path) -> list[dict]:
    log = checkout / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _request(with_subject=True, subject_mask=True, seed=3, op="add"):
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), dtype=bool)
    mask[10:22, 14:30] = True
    subject = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8) if with_subject else None
    true_mask = None
    if with_subject and subject_mask:
        true_mask = np.zeros((20, 16), dtype=bool)
        true_mask[4:15, 3:12] = True
    return EditRequest(scene=scene, subject=subject, mask=mask, instruction="add the cup here", label="cup",
                       seed=seed, case_id="multi_0001" if with_subject else "single_0001", mask_type="circle",
                       kind="multi" if with_subject else "single", op=op, subject_mask=true_mask)


def _run(method, *requests):
    try:
        return [method.edit(request) for request in requests]
    finally:
        method.close()


LOGGER = '''
import json, os
def log(**entry):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl"), "a") as handle:
        handle.write(json.dumps(entry) + "\\n")
'''


def test_workers_run_offline_and_use_this_trees_drivers(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout), "env": {"TRANSFORMERS_OFFLINE": "0"}})
    spec = method.worker_spec()
    assert Path(spec.driver) == (REPO_ROOT / "baselines" / "drivers" / "anydoor_driver.py").resolve()
    assert DRIVERS_DIR.resolve() == (REPO_ROOT / "baselines" / "drivers").resolve()
    assert spec.env["HF_HUB_OFFLINE"] == "1" and spec.env["TRANSFORMERS_OFFLINE"] == "0"  # the config may say otherwise
    assert set(OFFLINE_ENV) <= set(spec.env)


# -- AnyDoor --------------------------------------------------------------------------------------

def anydoor_checkout(root: Path, dinov2=True) -> Path:
    checkout = root / "AnyDoor"
    files = {
        "configs/inference.yaml": "pretrained_model: path/epoch=1-step=8687.ckpt\nconfig_file: configs/anydoor.yaml\n"
                                  "save_memory: False\n",
        "configs/anydoor.yaml": "model:\n  params:\n    cond_stage_config:\n"
                                "      target: ldm.modules.encoders.modules.FrozenDinoV2Encoder\n"
                                "      weight: path/dinov2_vitg14_pretrain.pth\n",
        "path/epoch=1-step=8687.ckpt": b"ckpt",
        "logger.py": LOGGER,
        # run_inference.py loads the model at import from ./configs/inference.yaml, as the official one does
        "cldm/__init__.py": "",
        "cldm/model.py": "def create_model(config_path):\n    raise RuntimeError('builds the model')\n",
        "run_inference.py": '''
            import numpy as np
            import yaml
            from cldm.model import create_model
            from logger import log

            config = yaml.safe_load(open('./configs/inference.yaml'))
            model_ckpt = config['pretrained_model']
            log(event="load", pretrained_model=model_ckpt, ckpt_bytes=open(model_ckpt, 'rb').read().decode())

            def inference_single_image(ref_image, ref_mask, tar_image, tar_mask, guidance_scale = 5.0):
                # the official process_pairs: the reference is whitened outside ref_mask
                ref_mask_3 = np.stack([ref_mask, ref_mask, ref_mask], -1)
                masked_ref_image = ref_image * ref_mask_3 + np.ones_like(ref_image) * 255 * (1 - ref_mask_3)
                log(event="edit", ref_mask=np.asarray(ref_mask).tolist(), tar_mask=np.asarray(tar_mask).tolist(),
                    guidance_scale=guidance_scale, ref_shape=list(ref_image.shape), noise=float(np.random.rand()))
                gen_image = tar_image.copy()
                rows, cols = np.nonzero(tar_mask)
                gen_image[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = \\
                    masked_ref_image.reshape(-1, 3).mean(0).astype(np.uint8)
                return gen_image
        ''',
    }
    if dinov2:
        files["path/dinov2_vitg14_pretrain.pth"] = b"dino"
    _write(checkout, files)
    return checkout


def test_anydoor_gets_the_subjects_true_mask_as_its_reference_mask(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    request = _request()
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout), "guidance_scale": 4.0})
    assert method.weights() == {"anydoor": str(checkout / "path" / "epoch=1-step=8687.ckpt")}
    output, = _run(method, request)
    load, edit = _calls(checkout)
    assert load["pretrained_model"] == "path/epoch=1-step=8687.ckpt" and load["ckpt_bytes"] == "ckpt"
    np.testing.assert_array_equal(np.array(edit["ref_mask"], dtype=bool), request.subject_mask)
    assert edit["guidance_scale"] == 4.0 and edit["ref_shape"] == [20, 16, 3]
    box = np.zeros_like(request.mask)
    box[10:22, 14:30] = True
    np.testing.assert_array_equal(np.array(edit["tar_mask"], dtype=bool), box)
    assert output.shape == request.scene.shape
    np.testing.assert_array_equal(output[~box], request.scene[~box])
    # only the subject's own pixels, not its background, reach the pasted colour
    subject_mean = request.subject[request.subject_mask].mean(0)
    whitened = np.where(request.subject_mask[..., None], request.subject, 255).reshape(-1, 3).mean(0)
    np.testing.assert_array_equal(output[box][0], whitened.astype(np.uint8))
    assert not np.allclose(whitened, request.subject.reshape(-1, 3).mean(0)) and subject_mean.shape == (3,)


def test_anydoor_without_a_subject_mask_uses_the_whole_subject_and_seeds_numpy(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout)})
    _run(method, _request(subject_mask=False, seed=5), _request(subject_mask=False, seed=5))
    first, second = _calls(checkout)[1:]
    assert np.array(first["ref_mask"]).all() and first["guidance_scale"] == 5.0
    assert first["noise"] == second["noise"]  # seeded from the case


def test_anydoor_missing_dinov2_fails_at_start_with_one_line(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path, dinov2=False)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout)})
    with pytest.raises(MissingWeightsError) as caught:
        _run(method, _request())
    message = str(caught.value)
    assert "dinov2_vitg14_pretrain.pth" in message and "\n" not in message and "Traceback" not in message
    assert _calls(checkout) == []  # failed before the official module loaded anything
    failing = [item.detail for item in method.preflight() if item.status == "fail"]
    assert len(failing) == 1 and "dinov2_vitg14_pretrain.pth" in failing[0]


# -- LAR-Gen (scepter) ---------------------------------------------------------------------------

LARGEN_YAML = """
NAME: LARGEN
IS_DEFAULT: False
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
    _write(checkout, {
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
                    assert FS.isfile(cfg.MODEL.PRETRAINED_MODEL)
                    embedders = cfg.MODEL.COND_STAGE_MODEL["EMBEDDERS"]
                    for path in [e.get(k) for e in embedders for k in ("PRETRAINED_MODEL", "TOKENIZER_PATH", "CLIP_DIR")]:
                        if path:
                            assert "://" not in path and __import__("os").path.exists(path), path
                    with open(cfg.MODEL.PRETRAINED_MODEL) as handle:
                        log(event="load", fs=FS.clients, checkpoint=cfg.MODEL.PRETRAINED_MODEL, bytes=handle.read(),
                            paths=sorted(p for p in _walk(dict(cfg)) if "/" in p))
                def __call__(self, input, num_samples=1, intermediate_callback=None, refine_strength=0,
                             img_to_img_strength=0, cat_uc=True, tuner_model=None, control_model=None,
                             largen_state=False, **kwargs):
                    assert largen_state, "LARGEN model must be used with LAR-Gen settings"
                    ref_mask = kwargs.get("largen_ref_mask")
                    log(event="call", input=input, task=kwargs["largen_task"], seed=kwargs["seed"],
                        image_scale=kwargs["largen_image_scale"],
                        ref_mask=None if ref_mask is None else ref_mask.tolist())
                    return {"images": kwargs["largen_base_image"].unsqueeze(0)}
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
                    return (base, as_tensor(tar_mask), base, None, ref, None, base,
                            torch.LongTensor([0, 0, 0, 0, 0, 0]), torch.LongTensor([0, 0, 0, 0]))
        ''',
    })
    models = root / "modelscope"
    _write(models, {"iic/LARGEN/models/largen_ckpt_s22k.pth": "largen-weights",
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
    multi, single = _request(), _request(with_subject=False)
    outputs = _run(method, multi, single)
    load, call_multi, call_single = _calls(checkout)
    assert load["fs"] == ["LocalFs"] and load["checkpoint"] == checkpoint and load["bytes"] == "largen-weights"
    assert not any(path.startswith("ms://") for path in load["paths"])
    assert str(Path(ms_models["AI-ModelScope/clip-vit-large-patch14"])) in load["paths"]
    assert call_multi["task"] == "Text_Subject_Guided_Inpainting" and call_single["task"] == "Text_Guided_Inpainting"
    np.testing.assert_array_equal(np.array(call_multi["ref_mask"], dtype=bool), multi.subject_mask)
    assert call_single["ref_mask"] is None
    assert call_multi["input"]["sample_steps"] == 7 and call_multi["input"]["prompt"] == "cup"
    assert call_multi["seed"] == multi.seed
    for output, request in zip(outputs, (multi, single)):
        np.testing.assert_array_equal(output, request.scene)  # the stand-in returns the stitched base image


def test_largen_unmapped_ms_reference_fails_at_start_naming_the_key(tmp_path):
    from baselines.largen import Largen

    checkout, ms_models = largen_checkout(tmp_path)
    del ms_models["AI-ModelScope/clip-vit-large-patch14"]
    method = Largen({"python": sys.executable, "checkout": str(checkout), "ms_models": ms_models})
    with pytest.raises(MissingWeightsError) as caught:
        _run(method, _request())
    message = str(caught.value)
    assert "TOKENIZER_PATH" in message and "'AI-ModelScope/clip-vit-large-patch14'" in message
    assert "ms_models" in message and "\n" not in message and "Traceback" not in message
    assert _calls(checkout) == []


# -- SmartEdit -----------------------------------------------------------------------------------

def smartedit_checkout(root: Path, lora_config_inside=True) -> tuple[Path, dict]:
    import torch

    checkout = root / "SmartEdit"
    _write(checkout, {
        "data/ConversationTemplateEditing_use.txt": "Human: edit [cap]\nGPT: ok\n",
        "logger.py": LOGGER,
        "test/DS_PeftForLoRA.py": '''
            import json, os
            from logger import log
            class PeftModel_for_LLM(object):
                @classmethod
                def from_pretrained(cls, model, model_id, adapter_name="default", is_trainable=False, config=None,
                                    **kwargs):
                    # as peft: the LoRA config is read from the folder given
                    with open(os.path.join(model_id, "adapter_config.json")) as handle:
                        lora = json.load(handle)
                    log(event="lora", model_id=model_id, r=lora["r"],
                        weights=open(os.path.join(model_id, "adapter_model.bin")).read())
                    return model
        ''',
        "test/InstructPix2PixSD_SM.py": '''
            import json, os
            import numpy as np
            from PIL import Image
            from logger import log
            class _Output(object):
                def __init__(self, images):
                    self.images = images
            class StableDiffusionInstructPix2PixPipeline_modulated(object):
                @classmethod
                def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
                    json.load(open(os.path.join(pretrained_model_name_or_path, "model_index.json")))
                    log(event="ip2p", path=pretrained_model_name_or_path)
                    return cls()
                def to(self, device):
                    return self
                def set_progress_bar_config(self, **kwargs):
                    pass
                def __call__(self, prompt=None, image=None, num_inference_steps=100, guidance_scale=7.5,
                             image_guidance_scale=1.5, prompt_embeds=None, modulated_image_feature=None,
                             generator=None, **kwargs):
                    log(event="pipe", steps=num_inference_steps, text=guidance_scale, image=image_guidance_scale,
                        size=list(image.size), in_channels=self.unet.conv_in.in_channels)
                    return _Output([Image.fromarray(255 - np.asarray(image))])
        ''',
        "model/__init__.py": "",
        "model/unet_2d_condition_ZeroConv.py": '''
            import os
            import torch
            class UNet2DConditionModel_ZeroConv(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv_in = torch.nn.Conv2d(4, 2, 3, padding=1)
                @classmethod
                def from_pretrained(cls, path, subfolder=None, **kwargs):
                    assert os.path.isfile(os.path.join(path, subfolder, "config.json"))
                    return cls()
        ''',
        "model/DS_SmartEdit_model.py": '''
            import json, os
            import torch
            from transformers.models.bert import BertConfig
            from huggingface_hub import try_to_load_from_cache
            from logger import log
            class _Processor(object):
                def preprocess(self, image, return_tensors="pt"):
                    return {"pixel_values": torch.zeros(1, 3, 224, 224)}
            class _Tower(object):
                image_processor = _Processor()
                def __call__(self, pixels):
                    return torch.zeros(1, 4, 8)
            class SmartEdit_model(object):
                @classmethod
                def from_pretrained(cls, path, cache_dir=None, **kwargs):
                    json.load(open(os.path.join(path, "config.json")))
                    log(event="llm", path=path)
                    model = cls()
                    model.model = "llama"
                    return model
                def init_visual_features_extractor(self, LLaVA_model_path, sd_qformer_version="v1.1-7b"):
                    tower = json.load(open(os.path.join(LLaVA_model_path, "config.json")))["mm_vision_tower"]
                    assert isinstance(try_to_load_from_cache(tower, "config.json"), str), tower
                    self.vision_tower = _Tower()
                    self.mm_projector = lambda features: features
                def setup_tokens_for_conversation(self, tokenizer, num_new_tokens, tune_new_embeddings,
                                                  editing_template, editing_max_length):
                    assert os.path.isfile(editing_template)
                def init_sd_qformer(self, num_query_token=77, num_hidden_layers=6, cross_attention_freq=2):
                    self.qformer_config = BertConfig.from_pretrained("bert-base-uncased")
                def load_pretrained_LLaMA_for_inference(self, pretrained_LLaMA):
                    log(event="llama", path=pretrained_LLaMA)
                def load_pretrained_for_inference(self, pretrain_model, LLaVA_00002_weights):
                    log(event="qformer", path=pretrain_model, llava=LLaVA_00002_weights)
                def init_BIM_module(self):
                    pass
                def load_BIM_module_for_inference(self, modulate_path):
                    log(event="bim", path=modulate_path)
                def to(self, dtype=None, device=None):
                    return self
                def eval(self):
                    return self
                def inference_BIM_module(self, clip_image_feature, query_output, latent_w=32, latent_h=32):
                    return torch.zeros(1, 4, latent_h, latent_w), torch.zeros_like(query_output)
        ''',
        "test/DS_SmartEdit_test.py": '''
            import os
            import random
            import torch
            editing_template = os.getcwd() + '/data/ConversationTemplateEditing_use.txt'
            def generate_LLaVA_image(CLIP_image_features_llm_input, text_prompt, LLM_tokenizer, model_):
                assert args.temperature >= 0
                with open(editing_template) as f:
                    assert f.read().startswith("Human")
                return torch.zeros(1, 77, 8, dtype=torch.float16)
            from InstructPix2PixSD_SM import StableDiffusionInstructPix2PixPipeline_modulated
            from model.DS_SmartEdit_model import SmartEdit_model
            from model.unet_2d_condition_ZeroConv import UNet2DConditionModel_ZeroConv
        ''',
    })
    weights = root / "checkpoints"
    total = weights / "SmartEdit-7B"
    lora = json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"]})
    files = {"SmartEdit-7B/LLM-15000/adapter_model.bin": "lora-weights",
             "SmartEdit-7B/modulate-15000/adapter_model.bin": "bim",
             "SmartEdit-7B/embeddings_qformer/checkpoint-15000_embeddings_qformer.bin": "qformer",
             "vicuna-7b-v1-1/config.json": json.dumps({"model_type": "bert"}),
             "vicuna-7b-v1-1/tokenizer_config.json": json.dumps({"tokenizer_class": "BertTokenizer",
                                                                 "unk_token": "[UNK]"}),
             "vicuna-7b-v1-1/vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\nedit\n",
             "LLaVA-7B-v1/config.json": json.dumps({"mm_vision_tower": "openai/clip-vit-large-patch14"}),
             "LLaVA-7B-v1/pytorch_model-00002-of-00002.bin": "llava",
             "instruct-pix2pix/model_index.json": "{}",
             "stable-diffusion-v1-5/unet/config.json": "{}"}
    files["SmartEdit-7B/" + ("LLM-15000/adapter_config.json" if lora_config_inside else "adapter_config.json")] = lora
    _write(weights, files)
    (total / "unet-15000").mkdir()
    torch.save({"unet.conv_in.weight": torch.zeros(2, 8, 3, 3), "unet.conv_in.bias": torch.zeros(2)},
               total / "unet-15000" / "adapter_model.bin")
    cache = root / "hf-cache"
    _cache_model(cache, "bert-base-uncased", {"config.json": json.dumps({"model_type": "bert", "hidden_size": 8})})
    _cache_model(cache, "openai/clip-vit-large-patch14", {"config.json": "{}"})
    config = {"python": sys.executable, "checkout": str(checkout), "total_dir": str(total),
              "model_name_or_path": str(weights / "vicuna-7b-v1-1"), "llava_model_path": str(weights / "LLaVA-7B-v1"),
              "sd_ip2p_path": str(weights / "instruct-pix2pix"), "sd_model_path": str(weights / "stable-diffusion-v1-5"),
              "env": {"HF_HUB_CACHE": str(cache)}, "resize_resolution": 32, "num_inference_steps": 3}
    return checkout, config


@pytest.mark.parametrize("inside", [True, False], ids=["hub-layout", "top-level-config"])
def test_smartedit_loads_the_released_layout_without_writing_into_it(tmp_path, inside):
    from baselines.smartedit import SmartEdit

    checkout, config = smartedit_checkout(tmp_path, lora_config_inside=inside)
    before = sorted(str(path) for path in Path(config["total_dir"]).rglob("*"))
    request = _request(with_subject=False)
    output, = _run(SmartEdit(config), request)
    calls = {call["event"]: call for call in _calls(checkout)}
    llm_dir = str(Path(config["total_dir"]) / "LLM-15000")
    assert calls["lora"]["r"] == 8 and calls["lora"]["weights"] == "lora-weights"
    assert (calls["lora"]["model_id"] == llm_dir) is inside
    assert calls["llama"]["path"] == str(Path(llm_dir) / "adapter_model.bin")
    assert calls["qformer"]["llava"] == str(Path(config["llava_model_path"]) / "pytorch_model-00002-of-00002.bin")
    assert calls["ip2p"]["path"] == config["sd_ip2p_path"]
    assert calls["pipe"] == {"event": "pipe", "steps": 3, "text": 7.5, "image": 1.5, "size": [32, 32], "in_channels": 8}
    assert sorted(str(path) for path in Path(config["total_dir"]).rglob("*")) == before
    # at SmartEdit's own resolution: the run engine maps it to the scene's size and records it in size_mapping
    assert output.shape == (32, 32, 3)


def test_smartedit_without_cached_helper_models_fails_at_start_naming_them(tmp_path):
    from baselines.smartedit import SmartEdit

    checkout, config = smartedit_checkout(tmp_path)
    config["env"] = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    with pytest.raises(MissingWeightsError) as caught:
        _run(SmartEdit(config), _request(with_subject=False))
    message = str(caught.value)
    assert "bert-base-uncased" in message and "openai/clip-vit-large-patch14" in message and "\n" not in message
    assert _calls(checkout) == []


# -- InstructAny2Pix -----------------------------------------------------------------------------

def any2pix_checkout(root: Path, base_idx=0, gdino=True) -> tuple[Path, dict]:
    checkout = root / "InstructAny2Pix"
    ckpt = {"ckpts/llm-retrained/config.json": json.dumps({"base_idx": base_idx}),
            "ckpts/sdxl/ip_adapter_global_local_2_view.bin": "ip", "ckpts/prior/model.bin": "prior",
            "ckpts/imagebind_huge.pth": "imagebind"}
    if gdino:
        ckpt.update({"ckpts/gdino/sam_vit_h_4b8939.pth": "sam", "ckpts/gdino/gdino.pth": "gdino",
                     "ckpts/gdino/GroundingDINO_SwinT_OGC.py": "# config"})
    _write(checkout, {
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
    _write(site, {"groundingdino/__init__.py": "", "segment_anything/__init__.py": "", "imagebind/__init__.py": ""})
    cache = root / "hf-cache"
    for model_id in ("stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/stable-diffusion-xl-refiner-1.0"):
        _cache_model(cache, model_id, {"model_index.json": "{}"})
    config = {"python": sys.executable, "checkout": str(checkout), "num_inference_steps": 4,
              "env": {"HF_HUB_CACHE": str(cache), "PYTHONPATH": str(site)}}
    return checkout, config


def test_instructany2pix_uses_the_released_llm_folder_and_the_subject_strength(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path)
    request = _request()
    output, = _run(InstructAny2Pix(config), request)
    load, call = _calls(checkout)
    assert load["llm_folder"] == "llm-retrained" and load["ckpt"] == str(checkout / "ckpts")
    assert call["subject_strength"] == 0.65 and call["steps"] == 4 and call["n_images"] == 2
    assert call["inst"] == "<video> <video> add the cup here"
    assert output.shape == request.scene.shape
    # the scene was the base image: its area is cut back out of the square output
    assert np.abs(output.astype(int) - request.scene.astype(int)).mean() < 40


def test_instructany2pix_when_the_model_picks_the_subject_as_base(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path, base_idx=1)
    request = _request()
    output, = _run(InstructAny2Pix(config), request)
    from PIL import Image

    expected = np.asarray(Image.fromarray(request.subject).resize((1024, 1024)).resize((56, 40), Image.Resampling.BICUBIC))
    assert output.shape == request.scene.shape
    assert np.abs(output.astype(int) - expected.astype(int)).mean() < 8


def test_instructany2pix_missing_gdino_and_packages_fail_at_start_with_one_line(tmp_path):
    from baselines.instructany2pix import InstructAny2Pix

    checkout, config = any2pix_checkout(tmp_path, gdino=False)
    config["env"] = {key: value for key, value in config["env"].items() if key != "PYTHONPATH"}
    with pytest.raises(MissingWeightsError) as caught:
        _run(InstructAny2Pix(config), _request())
    message = str(caught.value)
    assert "sam_vit_h_4b8939.pth" in message and "gdino.pth" in message and "GroundingDINO_SwinT_OGC.py" in message
    assert "groundingdino" in message and "segment_anything" in message and "\n" not in message
    assert _calls(checkout) == []


# -- pre-flight: `fsmi doctor --method` and the start of `fsmi run` --------------------------------

def _doctor(config: dict, tmp_path: Path, method="anydoor"):
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    config_path = tmp_path / f"{method}-config.json"
    config_path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["doctor", "--method", method, "--config", str(config_path)])
    return result.exit_code, result.output.splitlines()


def _failing(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def test_doctor_passes_a_complete_checkout_and_lists_every_check(tmp_path):
    checkout = anydoor_checkout(tmp_path)
    code, lines = _doctor({"python": sys.executable, "checkout": str(checkout)}, tmp_path)
    assert code == 0, lines
    assert lines[-1] == "anydoor: ready" and _failing(lines) == []
    text = "\n".join(lines)
    for checked in ("official code run_inference.py", "epoch=1-step=8687.ckpt", "configs/anydoor.yaml",
                    "dinov2_vitg14_pretrain.pth", "offline mode", f"python {sys.executable}"):
        assert checked in text, checked
    gpu, = [line for line in lines if "GPU memory" in line]
    assert "16 GiB" in gpu and "estimate" in gpu  # no GPU here: reported, not failed


def _without_dinov2(checkout: Path, config: dict) -> str:
    (checkout / "path" / "dinov2_vitg14_pretrain.pth").unlink()
    return "dinov2_vitg14_pretrain.pth"


def _without_cldm(checkout: Path, config: dict) -> str:
    import shutil

    shutil.rmtree(checkout / "cldm")  # an incomplete checkout: run_inference.py imports cldm.model
    return "imports cldm"


def _without_checkout(checkout: Path, config: dict) -> str:
    config["checkout"] = str(checkout.parent / "not-cloned")
    return "not-cloned"


def _with_downloads_allowed(checkout: Path, config: dict) -> str:
    config["env"] = {"HF_HUB_OFFLINE": "0"}
    return "HF_HUB_OFFLINE='0'"


def _without_python(checkout: Path, config: dict) -> str:
    config["python"] = str(checkout.parent / "envs" / "anydoor" / "bin" / "python")
    return "envs/anydoor/bin/python"


@pytest.mark.parametrize("remove", [_without_dinov2, _without_cldm, _without_checkout, _with_downloads_allowed,
                                    _without_python], ids=lambda function: function.__name__[1:])
def test_doctor_names_each_missing_piece_in_one_line_and_exits_2(tmp_path, remove):
    checkout = anydoor_checkout(tmp_path)
    config = {"python": sys.executable, "checkout": str(checkout)}
    named = remove(checkout, config)
    code, lines = _doctor(config, tmp_path)
    failing = _failing(lines)
    assert code == 2 and len(failing) == 1 and named in failing[0], lines
    assert lines[-1] == "anydoor: not ready, 1 problem"


def test_doctor_names_a_missing_package_once(tmp_path):
    checkout, config = any2pix_checkout(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "site-packages" / "segment_anything")
    code, lines = _doctor(config, tmp_path, method="instructany2pix")
    failing = _failing(lines)
    assert code == 2 and len(failing) == 1 and "segment_anything" in failing[0], lines
    assert any(line.startswith("ok") and "official code instructany2pix/pipeline.py" in line for line in lines)


@pytest.mark.parametrize("free_gib, status", [(8.0, "fail"), (20.0, "ok")])
def test_gpu_memory_is_checked_against_the_drivers_figure(tmp_path, free_gib, status):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    fake_gpu = {"cuda": True, "name": "Fake GPU", "free_bytes": int(free_gib * 2**30), "total_bytes": 24 * 2**30}
    items = AnyDoor({"python": sys.executable, "checkout": str(checkout)}).preflight(gpu=fake_gpu)
    gpu, = [item for item in items if item.item == "GPU memory"]
    assert gpu.status == status and f"{free_gib:.1f} GiB free of 24.0 GiB" in gpu.detail
    assert "16 GiB" in gpu.detail and "estimate, not measured" in gpu.detail
    assert [item.status for item in items if item is not gpu] == ["ok"] * (len(items) - 1)


def test_run_stops_before_any_case_and_any_model_load_with_one_line(tmp_path):
    import time

    from click.testing import CliRunner

    from fsmi_bench.cli import main
    from tests.support.run_fixtures import make_benchmark

    bench = make_benchmark(tmp_path / "bench", n_single=0, n_multi=2)
    checkout = anydoor_checkout(tmp_path)
    (checkout / "path" / "dinov2_vitg14_pretrain.pth").unlink()
    config_path = tmp_path / "anydoor.json"
    config_path.write_text(json.dumps({"python": sys.executable, "checkout": str(checkout)}))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["run", "--method", "anydoor", "--bench", str(bench), "--out",
                                       str(tmp_path / "run"), "--config", str(config_path), "--no-progress"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2 and "Traceback" not in result.output
    error, = [line for line in result.output.splitlines() if line.strip()]
    assert "anydoor is not ready" in error and "dinov2_vitg14_pretrain.pth" in error and "fsmi doctor" in error
    assert elapsed < 30 and _calls(checkout) == []  # nothing loaded, no case started
    assert not list((tmp_path / "run").rglob("*.png")) and not (tmp_path / "run" / "run.json").exists()
