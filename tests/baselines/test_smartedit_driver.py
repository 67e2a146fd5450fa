"""SmartEdit's driver, run through the worker protocol against a stand-in of TencentARC/SmartEdit a65f126.

The stand-in keeps the official script's device and dtype assumptions: ``get_prompt_embedding_LLM`` makes
its token ids on a hard-coded ``"cuda"`` (test/DS_SmartEdit_test.py l.46-47, again l.92-94) and feeds them
to the LLM's embedding table (l.67), which sits where ``main`` moved the model: ``model_.to(dtype=
torch.float32, device="cuda")`` (l.252). The pipeline is loaded in float16 (l.409-414) and its UNet moved
to float16 (l.439). As in torch, a bare "cuda" is the current CUDA device, and the stand-in raises torch's
device-mismatch error when the ids and the model are on different devices. This machine has no GPU, so
the workers run with tests/support/fake_cuda on their PYTHONPATH: torch.cuda reports the GPUs a test asks
for, and the arithmetic stays on the CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fsmi_bench.errors import BadInputError, MissingWeightsError
from tests.support.official_checkouts import (
    FAKE_CUDA,
    LOGGER,
    cache_model,
    make_request,
    read_calls,
    run_requests,
    write_files,
)

STANDIN = {
    "data/ConversationTemplateEditing_use.txt": "Human: edit [cap]\nGPT: ok\n",
    "logger.py": LOGGER,
    "conversation_v01.py": '''
        class SeparatorStyle(object):
            TWO = 2
        def get_conv_template(name):
            return name
    ''',
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
        from model.DS_SmartEdit_model import where
        class _Output(object):
            def __init__(self, images):
                self.images = images
        class StableDiffusionInstructPix2PixPipeline_modulated(object):
            @classmethod
            def from_pretrained(cls, pretrained_model_name_or_path, torch_dtype=None, **kwargs):
                json.load(open(os.path.join(pretrained_model_name_or_path, "model_index.json")))
                log(event="ip2p", path=pretrained_model_name_or_path, dtype=str(torch_dtype))
                return cls()
            def to(self, device):
                log(event="pipe_to", device=str(where(device)))
                return self
            def set_progress_bar_config(self, **kwargs):
                pass
            def __call__(self, prompt=None, image=None, num_inference_steps=100, guidance_scale=7.5,
                         image_guidance_scale=1.5, prompt_embeds=None, modulated_image_feature=None,
                         generator=None, **kwargs):
                log(event="pipe", steps=num_inference_steps, text=guidance_scale, image=image_guidance_scale,
                    size=list(image.size), in_channels=self.unet.conv_in.in_channels,
                    embeds_dtype=str(prompt_embeds.dtype))
                return _Output([Image.fromarray(255 - np.asarray(image))])
    ''',
    "model/__init__.py": "",
    "model/unet_2d_condition_ZeroConv.py": '''
        import os
        import torch
        from logger import log
        from model.DS_SmartEdit_model import where
        class UNet2DConditionModel_ZeroConv(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv_in = torch.nn.Conv2d(4, 2, 3, padding=1)
            @classmethod
            def from_pretrained(cls, path, subfolder=None, **kwargs):
                assert os.path.isfile(os.path.join(path, subfolder, "config.json"))
                return cls()
            def to(self, *args, dtype=None, device=None):
                log(event="unet_to", dtype=str(dtype), device=str(where(device)))
                return super().to(*args, dtype=dtype, device=device)
    ''',
    "model/DS_SmartEdit_model.py": '''
        import json, os
        import torch
        from transformers.models.bert import BertConfig
        from huggingface_hub import try_to_load_from_cache
        from logger import log
        def where(device):
            """The device torch puts a tensor asked for on ``device``: a bare "cuda" is the current GPU."""
            device = torch.device(device)
            if device.type == "cuda" and device.index is None:
                return torch.device("cuda", torch.cuda.current_device())
            return device
        class _Processor(object):
            def preprocess(self, image, return_tensors="pt"):
                return {"pixel_values": torch.zeros(1, 3, 224, 224)}
        class _Tower(object):
            image_processor = _Processor()
            def __call__(self, pixels):
                return torch.zeros(1, 4, 8)
        class SmartEdit_model(object):
            device = torch.device("cpu")  # where from_pretrained leaves the weights
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
                self.device = where(device)
                log(event="model_to", dtype=str(dtype), device=str(self.device))
                return self
            def eval(self):
                return self
            def inference_sd_qformer(self, llm_img_token_states):
                return torch.zeros(1, 77, 8)
            def inference_BIM_module(self, clip_image_feature, query_output, latent_w=32, latent_h=32):
                return torch.zeros(1, 4, latent_h, latent_w), torch.zeros_like(query_output)
    ''',
    "test/DS_SmartEdit_test.py": '''
        import os
        import random
        import torch
        torch.set_grad_enabled(False)
        editing_template = os.getcwd() + '/data/ConversationTemplateEditing_use.txt'

        def get_prompt_embedding_LLM(img_embeddings, text_prompt, conversation_template, LLM_tokenizer, model_,
                                     condition_prompt='positive'):
            conversation = conversation_template["Human"].replace('[cap]', f'"{text_prompt}"')
            text_prompt_input_ids = LLM_tokenizer(conversation).input_ids
            text_prompt_input_ids = torch.as_tensor(text_prompt_input_ids, device="cuda")
            # the ids meet the embedding table of the LLM, on the device main() moved the model to
            if where("cuda") != model_.device:
                raise RuntimeError("Expected all tensors to be on the same device, but found at least two "
                                   f"devices, {model_.device} and {where('cuda')}!")
            assert args.temperature >= 0
            return model_.inference_sd_qformer(text_prompt_input_ids)

        @torch.inference_mode()
        def generate_LLaVA_image(CLIP_image_features_llm_input, text_prompt, LLM_tokenizer, model_):
            conversation_templates = []
            with open(editing_template, 'r') as f:
                for line in f.readlines():
                    line = line.strip()
                    if line.startswith('Human: '):
                        conversation_templates.append({'Human': line[len("Human: "):]})
            conversation_template = random.choice(conversation_templates)
            both_condition_embeddings = get_prompt_embedding_LLM(
                CLIP_image_features_llm_input, text_prompt, conversation_template, LLM_tokenizer, model_)
            return both_condition_embeddings.to(torch.float16)

        import PIL
        import shutil
        from InstructPix2PixSD_SM import StableDiffusionInstructPix2PixPipeline_modulated
        from model.DS_SmartEdit_model import SmartEdit_model, where
        from model.unet_2d_condition_ZeroConv import UNet2DConditionModel_ZeroConv
        from conversation_v01 import SeparatorStyle, get_conv_template
    ''',
}


def smartedit_checkout(root: Path, lora_config_inside=True, gpus: int | None = 2) -> tuple[Path, dict]:
    """A stand-in checkout, the released checkpoints' layout, a hub cache, and a config that runs it on a
    machine with ``gpus`` emulated CUDA GPUs (None: this machine as it is)."""
    import torch

    checkout = root / "SmartEdit"
    write_files(checkout, STANDIN)
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
    write_files(weights, files)
    (total / "unet-15000").mkdir()
    torch.save({"unet.conv_in.weight": torch.zeros(2, 8, 3, 3), "unet.conv_in.bias": torch.zeros(2)},
               total / "unet-15000" / "adapter_model.bin")
    cache = root / "hf-cache"
    cache_model(cache, "bert-base-uncased", {"config.json": json.dumps({"model_type": "bert", "hidden_size": 8})})
    cache_model(cache, "openai/clip-vit-large-patch14", {"config.json": "{}"})
    env = {"HF_HUB_CACHE": str(cache)}
    if gpus is not None:
        env.update(PYTHONPATH=FAKE_CUDA, FSMI_FAKE_CUDA_DEVICES=str(gpus))
    config = {"python": sys.executable, "checkout": str(checkout), "total_dir": str(total),
              "model_name_or_path": str(weights / "vicuna-7b-v1-1"), "llava_model_path": str(weights / "LLaVA-7B-v1"),
              "sd_ip2p_path": str(weights / "instruct-pix2pix"),
              "sd_model_path": str(weights / "stable-diffusion-v1-5"), "env": env, "resize_resolution": 32,
              "num_inference_steps": 3}
    return checkout, config


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_smartedit_model_sits_on_the_gpu_where_the_scripts_cuda_tensors_are_made(tmp_path, device):
    # test/DS_SmartEdit_test.py l.46-47 and l.67 (ids on "cuda" meet the model), l.252 (float32 LLM on "cuda"),
    # l.409-414 and l.439 (float16 pipeline and UNet on "cuda")
    from baselines.smartedit import SmartEdit

    checkout, config = smartedit_checkout(tmp_path, gpus=2)
    output, = run_requests(SmartEdit(config, device=device), make_request(with_subject=False))
    calls = {call["event"]: call for call in read_calls(checkout)}
    # the worker sees only the GPU asked for, so the script's bare "cuda" is that GPU, as is the model
    assert calls["model_to"] == {"event": "model_to", "dtype": "torch.float32", "device": "cuda:0"}
    assert calls["ip2p"]["dtype"] == "torch.float16" and calls["pipe_to"]["device"] == "cuda:0"
    assert calls["unet_to"] == {"event": "unet_to", "dtype": "torch.float16", "device": "cuda:0"}
    assert calls["pipe"]["embeds_dtype"] == "torch.float16" and output.shape == (32, 32, 3)


def test_smartedit_worker_sees_the_gpu_of_its_rank(tmp_path, monkeypatch):
    from baselines.smartedit import SmartEdit

    _, config = smartedit_checkout(tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = SmartEdit(config, device="cuda:1").worker_spec()  # `fsmi run --device cuda` under LOCAL_RANK=1
    assert spec.env["CUDA_VISIBLE_DEVICES"] == "1" and spec.config["device"] == "cuda"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # the rank's GPU among those the machine shows
    assert SmartEdit(config, device="cuda:1").worker_spec().env["CUDA_VISIBLE_DEVICES"] == "5"
    config["env"]["CUDA_VISIBLE_DEVICES"] = "6"  # the config's choice counts first
    assert SmartEdit(config, device="cuda").worker_spec().env["CUDA_VISIBLE_DEVICES"] == "6"
    with pytest.raises(BadInputError, match="CUDA_VISIBLE_DEVICES"):
        SmartEdit(config, device="cuda:1").worker_spec()


def _run_cli(tmp_path: Path, config: dict, device: str):
    from click.testing import CliRunner

    from fsmi_bench.cli import main
    from tests.support.run_fixtures import make_benchmark

    bench = make_benchmark(tmp_path / "bench", n_single=1, n_multi=0)
    config_path = tmp_path / "smartedit.json"
    config_path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["run", "--method", "smartedit", "--bench", str(bench), "--out",
                                       str(tmp_path / "run"), "--config", str(config_path), "--device", device,
                                       "--no-progress"])
    return result, [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("gpus, device, named", [(2, "cpu", "--device cuda"), (None, "cuda", "no CUDA device")],
                         ids=["cpu-device", "machine-without-cuda"])
def test_smartedit_refuses_to_run_off_cuda_in_one_line_before_loading(tmp_path, gpus, device, named):
    checkout, config = smartedit_checkout(tmp_path, gpus=gpus)
    result, lines = _run_cli(tmp_path, config, device)
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "smartedit" in lines[0] and named in lines[0]
    assert read_calls(checkout) == []  # no model was loaded
    assert not list((tmp_path / "run").rglob("*.png"))


@pytest.mark.parametrize("inside", [True, False], ids=["hub-layout", "top-level-config"])
def test_smartedit_loads_the_released_layout_without_writing_into_it(tmp_path, inside):
    from baselines.smartedit import SmartEdit

    checkout, config = smartedit_checkout(tmp_path, lora_config_inside=inside)
    before = sorted(str(path) for path in Path(config["total_dir"]).rglob("*"))
    output, = run_requests(SmartEdit(config, device="cuda"), make_request(with_subject=False))
    calls = {call["event"]: call for call in read_calls(checkout)}
    llm_dir = str(Path(config["total_dir"]) / "LLM-15000")
    assert calls["lora"]["r"] == 8 and calls["lora"]["weights"] == "lora-weights"
    assert (calls["lora"]["model_id"] == llm_dir) is inside
    assert calls["llama"]["path"] == str(Path(llm_dir) / "adapter_model.bin")
    assert calls["qformer"]["llava"] == str(Path(config["llava_model_path"]) / "pytorch_model-00002-of-00002.bin")
    assert calls["ip2p"]["path"] == config["sd_ip2p_path"]
    assert {key: calls["pipe"][key] for key in ("steps", "text", "image", "size", "in_channels")} == \
        {"steps": 3, "text": 7.5, "image": 1.5, "size": [32, 32], "in_channels": 8}
    assert sorted(str(path) for path in Path(config["total_dir"]).rglob("*")) == before
    # at SmartEdit's own resolution: the run engine maps it to the scene's size and records it in size_mapping
    assert output.shape == (32, 32, 3)


def test_smartedit_without_cached_helper_models_fails_at_start_naming_them(tmp_path):
    from baselines.smartedit import SmartEdit

    checkout, config = smartedit_checkout(tmp_path)
    config["env"]["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    with pytest.raises(MissingWeightsError) as caught:
        run_requests(SmartEdit(config, device="cuda"), make_request(with_subject=False))
    message = str(caught.value)
    assert "bert-base-uncased" in message and "openai/clip-vit-large-patch14" in message and "\n" not in message
    assert read_calls(checkout) == []


def test_smartedit_gpu_memory_figure_counts_the_llm_in_float32(tmp_path):
    from baselines.smartedit import SmartEdit

    _, config = smartedit_checkout(tmp_path)
    fake_gpu = {"cuda": True, "name": "Fake GPU", "free_bytes": 80 * 2**30, "total_bytes": 80 * 2**30}
    gpu, = [item for item in SmartEdit(config, device="cuda").preflight(gpu=fake_gpu) if item.item == "GPU memory"]
    assert "float32" in gpu.detail and "half precision" not in gpu.detail  # l.252: the LLM runs in float32
