"""The ``paper`` config trains as it will on a GPU: bf16 autocast, gradient checkpointing and accumulation,
the llava-hf LLaVA stand-in stored in float16 and given with ``dtype: auto`` (its frozen bases then load in
bfloat16, flexedit_model/precision.py), here on the CPU. A frozen dtype autocast cannot compute with is one
line before any model loads."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from flexedit_model.config import load_config
from flexedit_model.precision import frozen_dtype
from fsmi_bench.errors import BadInputError
from tests.support.flexedit_inputs import GPU_SETTINGS, paper_config, write_paper_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_paper_weights(tmp_path_factory.mktemp("user-weights"))


def test_the_llava_stand_in_is_float16_as_llava_hf_ships_it(weights):
    from safetensors import safe_open

    config = json.loads((weights["llava"] / "config.json").read_text())
    assert config["torch_dtype"] == "float16" and config["text_config"]["torch_dtype"] == "float16"
    dtypes = set()
    for path in weights["llava"].glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            dtypes |= {handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert dtypes == {"F16"}


def _counting(module, counts: dict, name: str, dtypes: dict | None = None):
    """Count the calls of ``module.forward`` and keep the dtype of its last output. Counted on entry:
    checkpointing's recomputation calls it without the module's hooks and stops it once the backward pass
    has what it needs."""
    forward = module.forward

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        output = forward(*args, **kwargs)
        if dtypes is not None:
            dtypes[name] = (output[0] if isinstance(output, tuple) else output).dtype
        return output

    module.forward = counted


def test_paper_trains_with_bf16_autocast_checkpointing_and_accumulation(weights, tmp_path, monkeypatch,
                                                                         own_accelerate_state):
    from flexedit_model import build
    from flexedit_model.training.loop import train_flexedit

    config = paper_config(weights, training={"steps": 2, "log_every": 1, "checkpoint_every": 2})
    paper = load_config("paper")
    assert {key: config.training[key] for key in GPU_SETTINGS} == {key: paper.training[key] for key in GPU_SETTINGS}
    assert (paper.training["mixed_precision"], paper.training["gradient_checkpointing"]) == ("bf16", True)
    assert config.vllm["dtype"] == config.image_encoder["dtype"] == config.vae["dtype"] == "auto"
    accumulation = paper.training["gradient_accumulation_steps"]
    assert accumulation > 1

    built, counts, dtypes = {}, {}, {}
    original = build.build_components

    def build_and_watch(*args, **kwargs):
        model, vae, tokenizer = original(*args, **kwargs)
        built.update(model=model, vae=vae)
        # Checkpointed blocks run twice per micro-batch (forward, then again in the backward pass).
        _counting(model.unet.down_blocks[0].attentions[0].transformer_blocks[0], counts, "unet block")
        _counting(model.vllm.model.language_model.layers[0].self_attn, counts, "llava attention")
        _counting(model.unet.conv_in, counts, "conv_in", dtypes)  # trained in float32: computes in bf16 under autocast
        return model, vae, tokenizer

    monkeypatch.setattr(build, "build_components", build_and_watch)
    summary = train_flexedit(config, "mini", tmp_path / "run", progress=False)
    model, vae = built["model"], built["vae"]

    assert summary.steps == 2 and all(torch.isfinite(torch.tensor(summary.losses)))
    micro_batches = 2 * accumulation
    assert counts == {"unet block": 2 * micro_batches, "llava attention": 2 * micro_batches, "conv_in": micro_batches}
    assert dtypes["conv_in"] == torch.bfloat16
    # The float16 folder given with "auto" is kept in bfloat16, as are CLIP and the VAE; what trains is float32.
    assert model.vllm.model.language_model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert next(model.vllm.model.vision_tower.parameters()).dtype == torch.bfloat16
    assert next(model.image_encoder.parameters()).dtype == torch.bfloat16 and vae.dtype == torch.bfloat16
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    assert trained and all(parameter.dtype == torch.float32 for parameter in trained)
    run = json.loads((tmp_path / "run" / "train.json").read_text())
    assert run["frozen_dtypes"] == {"vllm": "bfloat16", "image_encoder": "bfloat16", "vae": "bfloat16"}
    assert run["effective_batch_size"] == 2 * accumulation and run["samples_at_last_step"] == 2 * 2 * accumulation
    # The optimiser updated once per step, not once per micro-batch.
    state = torch.load(tmp_path / "run" / "state-00000002" / "optimizer.bin", weights_only=False)["state"]
    assert {float(entry["step"]) for entry in state.values()} == {2.0}


def test_float16_frozen_weights_under_bf16_are_one_line_before_any_model_loads(weights, tmp_path, monkeypatch):
    from transformers import CLIPVisionModelWithProjection, LlavaForConditionalGeneration

    from flexedit_model.latent_codec import ReferencedAutoencoderKL
    from flexedit_model.training.loop import train_flexedit
    from fsmi_bench.cli import main

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the dtype was checked")

    for cls in (LlavaForConditionalGeneration, CLIPVisionModelWithProjection, ReferencedAutoencoderKL):
        monkeypatch.setattr(cls, "from_pretrained", no_load)
    config = paper_config(weights, training={}, dtype="fp16")
    message = r"vllm\.dtype 'fp16' keeps frozen weights in float16, but training\.mixed_precision 'bf16'"
    with pytest.raises(BadInputError, match=message):
        train_flexedit(config, "mini", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    config_file = tmp_path / "paper-fp16.json"
    config_file.write_text(json.dumps(config.to_dict()))
    result = CliRunner().invoke(main, ["train", "flexedit", "--config", str(config_file),
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "vllm.dtype 'fp16'" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("choice, mixed_precision, expected", [
    ("auto", "bf16", torch.bfloat16), ("bf16", "bf16", torch.bfloat16), ("fp32", "bf16", torch.float32),
    ("auto", "fp8", torch.bfloat16), ("auto", "no", torch.float32), ("fp32", "no", torch.float32),
    ("auto", None, torch.float32),  # inference on the CPU
])
def test_frozen_weights_are_kept_in_the_dtype_the_run_computes_in(choice, mixed_precision, expected):
    assert frozen_dtype(choice, "cpu", mixed_precision) == expected


@pytest.mark.parametrize("choice, mixed_precision", [("fp16", "bf16"), ("bf16", "fp16"), ("bf16", "no"),
                                                     ("fp16", "no")])
def test_a_16_bit_dtype_autocast_does_not_compute_in_is_refused(choice, mixed_precision):
    with pytest.raises(BadInputError, match=rf"vllm\.dtype '{choice}' keeps frozen weights in") as caught:
        frozen_dtype(choice, "cuda", mixed_precision, "vllm.dtype")
    assert "\n" not in str(caught.value)


def test_on_a_gpu_inference_keeps_the_weights_as_stored_and_fp16_training_keeps_float16():
    assert frozen_dtype("auto", "cuda") is None
    assert frozen_dtype("auto", "cuda", "fp16") == torch.float16
    with pytest.raises(BadInputError, match="fp16"):
        frozen_dtype("auto", "cpu", "fp16")
