"""The ``paper`` config with the user's checkpoints, as stand-ins in their exact on-disk formats (random
weights, toy widths, 2 layers): the modules used ARE the ones given, float16 LLaVA trains and runs,
saving writes only what was trained plus references to the bases, and loads back identical."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from flexedit_model.checkpoint_formats import llava_shipped_key
from flexedit_model.config import load_config
from fsmi_bench.errors import BadInputError, IntegrityError, MissingWeightsError
from tests.support.flexedit_inputs import paper_config, toy_edit, write_paper_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_paper_weights(tmp_path_factory.mktemp("user-weights"))


def file_tensors(folder, pattern="*.safetensors", rename=lambda key: key):
    tensors = {}
    for path in sorted(folder.glob(pattern)):
        with safe_open(str(path), "pt") as handle:
            tensors.update({rename(key): handle.get_tensor(key) for key in handle.keys()})
    return tensors


def assert_equals_files(model, weights):
    """Every frozen base tensor equals the one in the user's files (float16 LLaVA read as stored)."""
    llava_files = file_tensors(weights["llava"])
    checked = 0
    for key, tensor in model.vllm.state_dict().items():
        if "lora_" in key or ".new_rows" in key:
            continue
        shipped = llava_shipped_key(key.replace(".pretrained.", ".").replace(".base_layer.", "."))
        assert torch.equal(tensor.to(llava_files[shipped].dtype), llava_files[shipped]), key
        checked += 1
    assert checked == len(llava_files)
    clip_files = file_tensors(weights["clip"])
    for key, tensor in model.image_encoder.state_dict().items():
        assert torch.equal(tensor, clip_files[key]), key


@pytest.fixture(scope="module")
def built(weights):
    from flexedit_model.build import build_components

    return build_components(paper_config(weights), seed=0, device="cpu")


def test_the_parts_given_are_the_parts_used(weights, built):
    model, vae, _ = built
    assert_equals_files(model, weights)
    unet_files = file_tensors(weights["sd"] / "unet")
    for key, tensor in model.unet.state_dict().items():
        if key == "conv_in.weight":
            # The pretrained 4 channels, then 4 new ones (the scene latent) at exactly 0.
            assert torch.equal(tensor[:, :4], unet_files[key]) and torch.count_nonzero(tensor[:, 4:]) == 0
        elif ".processor." not in key:
            assert torch.equal(tensor, unet_files[key]), key
    vae_files = file_tensors(weights["sd"] / "vae")
    assert all(torch.equal(tensor, vae_files[key]) for key, tensor in vae.state_dict().items())
    # The recorded config is plain JSON (no paths objects) and names the widened UNet.
    json.dumps(dict(model.config))
    assert model.config.unet_config["in_channels"] == 8 and "_name_or_path" not in model.config.unet_config


def test_from_parts_adopts_the_very_modules():
    from diffusers import UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from flexedit_model.build import build_tokenizer
    from flexedit_model.model import FlexEditModel
    from flexedit_model.qformer import qformer_config
    from flexedit_model.vllm import image_token_ids, scratch_llava_config

    config = load_config("tiny")
    tokenizer = build_tokenizer(config)
    from transformers import LlavaForConditionalGeneration

    vllm = LlavaForConditionalGeneration(scratch_llava_config(config.vllm, tokenizer))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                             num_attention_heads=4, image_size=32, patch_size=16,
                                                             projection_dim=16))
    unet = UNet2DConditionModel(in_channels=8, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    model = FlexEditModel.from_parts(vllm, encoder, unet, image_token_ids=image_token_ids(tokenizer, 4),
                                     qformer_config=qformer_config(config.qformer, 32).to_dict(), num_query_tokens=4,
                                     num_subject_tokens=2, adapter_heads=4)
    assert model.vllm is vllm and model.image_encoder is encoder and model.unet is unet


def one_training_step(model, vae, tokenizer, config, autocast_dtype):
    from flexedit_model.build import build_scheduler
    from flexedit_model.training.data import TrainingExamples, load_training_content
    from flexedit_model.training.loop import set_trainable
    from flexedit_model.training.losses import collate_examples, flexedit_loss

    parameters = set_trainable(model, config)
    model.train()
    examples = TrainingExamples(load_training_content("mini", "train"), config.resolution, 0, 0.5, 0.5)
    batch = collate_examples([examples[0], examples[1]], tokenizer, model)
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
        parts = flexedit_loss(model, vae, build_scheduler(config, "ddpm"), batch, torch.Generator().manual_seed(0))
    parts.total.backward()
    optimizer.step()
    return parameters, parts


@pytest.mark.parametrize("frozen, autocast_dtype", [("auto", torch.bfloat16), ("auto", torch.float32),
                                                    ("bf16", torch.bfloat16)])
def test_float16_llava_trains_only_its_new_rows_and_lora(weights, frozen, autocast_dtype):
    # LLaVA is stored in float16. On the CPU, "auto" keeps it in float32 (CPU autocast does not take
    # float16); bf16 keeps it in bfloat16. Trained parameters are float32 either way.
    from flexedit_model.build import build_components

    config = paper_config(weights, dtype=frozen)
    model, vae, tokenizer = build_components(config, seed=0, device="cpu")
    expected = torch.float32 if frozen == "auto" else torch.bfloat16
    assert model.vllm.model.language_model.layers[0].mlp.up_proj.weight.dtype == expected
    embedding = model.vllm.get_input_embeddings()
    rows_before = embedding.new_rows.detach().clone()
    parameters, parts = one_training_step(model, vae, tokenizer, config, autocast_dtype)
    assert torch.isfinite(parts.total)
    assert all(parameter.dtype == torch.float32 for parameter in parameters)
    trained_vllm = {name for name, parameter in model.vllm.named_parameters() if parameter.requires_grad}
    assert trained_vllm and all("lora_" in name or ".new_rows" in name for name in trained_vllm)
    assert not embedding.pretrained.weight.requires_grad and not model.vllm.lm_head.pretrained.weight.requires_grad
    assert not torch.equal(embedding.new_rows, rows_before)  # the <img_i> rows learned
    if frozen == "auto":
        assert_equals_files(model, weights)  # the frozen bases did not move


def test_float16_frozen_weights_on_the_cpu_are_refused_with_a_message(weights):
    from flexedit_model.build import build_components

    with pytest.raises(BadInputError, match="fp16"):
        build_components(paper_config(weights, dtype="fp16"), seed=0, device="cpu")


def test_saved_pipeline_holds_only_what_trains_and_loads_back_identical(weights, built, tmp_path):
    from flexedit_model.build import build_pipeline
    from flexedit_model.checkpoint import BASES_FILE
    from flexedit_model.pipeline_flexedit import FlexEditPipeline

    model, vae, tokenizer = built
    config = paper_config(weights)
    with torch.no_grad():  # as after training: the trained tensors differ from their initial values
        model.vllm.get_input_embeddings().new_rows.add_(0.5)
        model.qformer.to_condition.bias.add_(0.1)
    pipeline = build_pipeline(config, components=built)
    pipeline.set_progress_bar_config(disable=True)
    pipeline.save_pretrained(tmp_path / "pipe")
    saved = file_tensors(tmp_path / "pipe" / "model", "diffusion_pytorch_model*.safetensors")
    parts = {key.split(".", 1)[0] for key in saved}
    assert parts == {"vllm", "qformer", "adapter", "unet", "null_condition"}
    assert all("lora_" in key or ".new_rows" in key for key in saved if key.startswith("vllm."))
    references = json.loads((tmp_path / "pipe" / "model" / BASES_FILE).read_text())
    assert set(references) == {"vllm", "image_encoder"}
    assert references["vllm"]["path"] == str(weights["llava"].resolve()) and len(references["vllm"]["sha256"]) == 64
    json.loads((tmp_path / "pipe" / "model" / "config.json").read_text())

    # The VAE is referenced as well: its config and its folder's sha256, no weights.
    vae_files = sorted(path.name for path in (tmp_path / "pipe" / "vae").iterdir())
    assert vae_files == [BASES_FILE, "config.json"]
    vae_reference = json.loads((tmp_path / "pipe" / "vae" / BASES_FILE).read_text())["vae"]
    assert vae_reference["path"] == str((weights["sd"] / "vae").resolve()) and len(vae_reference["sha256"]) == 64

    loaded = FlexEditPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    expected, actual = model.state_dict(), loaded.model.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    vae_files_given = file_tensors(weights["sd"] / "vae")
    assert all(torch.equal(tensor, vae_files_given[key]) for key, tensor in loaded.vae.state_dict().items())
    loaded.save_pretrained(tmp_path / "again")  # saved again, still a reference
    assert (tmp_path / "again" / "vae" / BASES_FILE).is_file()
    assert not list((tmp_path / "again" / "vae").glob("*.safetensors"))
    assert_equals_files(loaded.model, weights)
    scene, mask, subject = toy_edit(seed=5)
    first = pipeline(scene, mask, "add the dog", subject=subject, seed=3, return_answer=True)
    again = loaded(scene, mask, "add the dog", subject=subject, seed=3, return_answer=True)
    assert first.image.shape == scene.shape and first.image.dtype == np.uint8
    assert np.abs(first.image.astype(int) - again.image.astype(int)).max() <= 1
    assert first.answer == again.answer


def test_a_missing_or_changed_base_is_one_line_naming_it(weights, built, tmp_path):
    import shutil

    from flexedit_model.checkpoint import load_base, reference_base

    copy = shutil.copytree(weights["clip"], tmp_path / "clip")
    reference = reference_base("image_encoder", copy)
    with safe_open(str(copy / "model.safetensors"), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    tensors["vision_model.post_layernorm.bias"] += 1
    from safetensors.torch import save_file

    save_file(tensors, str(copy / "model.safetensors"))
    with pytest.raises(IntegrityError, match="base image_encoder .* has changed") as caught:
        load_base(reference, None)
    assert "\n" not in str(caught.value)
    shutil.rmtree(copy)
    with pytest.raises(MissingWeightsError, match="base image_encoder of this FlexEdit checkpoint is missing"):
        load_base(reference, None)


def test_a_missing_or_changed_vae_is_one_line_naming_it(weights, built, tmp_path):
    import shutil

    from safetensors.torch import save_file

    from flexedit_model.build import build_components, build_pipeline
    from flexedit_model.pipeline_flexedit import FlexEditPipeline

    sd = shutil.copytree(weights["sd"], tmp_path / "sd")
    config = paper_config(weights)
    config = dataclasses.replace(config, vae={**config.vae, "path": str(sd)})
    build_pipeline(config, components=build_components(config, seed=0, device="cpu")).save_pretrained(tmp_path / "pipe")
    vae_file = sd / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = file_tensors(sd / "vae")
    tensors["decoder.conv_out.bias"] += 1
    save_file(tensors, str(vae_file))
    with pytest.raises(IntegrityError, match=r"base vae at .* has changed") as caught:
        FlexEditPipeline.from_pretrained(tmp_path / "pipe")
    assert "\n" not in str(caught.value)
    shutil.rmtree(sd / "vae")
    with pytest.raises(MissingWeightsError, match="base vae of this FlexEdit checkpoint is missing") as caught:
        FlexEditPipeline.from_pretrained(tmp_path / "pipe")
    assert "\n" not in str(caught.value)


def test_paper_training_steps_are_explicit():
    from flexedit_model.training.settings import TrainingSettings

    training = load_config("paper").training
    assert "steps" in training
    without = {key: value for key, value in training.items() if key != "steps"}
    with pytest.raises(BadInputError, match=r"training\.steps is missing"):
        TrainingSettings.from_config(without)


def test_training_states_and_the_pipeline_hold_no_frozen_tensors(weights, tmp_path, own_accelerate_state):
    """Two steps of the paper config on the stand-ins, with its own precision, checkpointing and accumulation:
    state-<step>/ holds the trained parameters and the optimiser, not LLaVA, CLIP or the VAE; the pipeline's
    trained parts are all its weight bytes."""
    from flexedit_model.build import build_components
    from flexedit_model.training.loop import set_trainable, train_flexedit

    config = paper_config(weights, training={"checkpoint_every": 1, "log_every": 1})
    summary = train_flexedit(config, "mini", tmp_path / "run", steps=2, progress=False)
    model, vae, _ = build_components(config, seed=0, device="cpu")
    set_trainable(model, config)
    trained = {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert any(name.startswith("vllm.") for name in frozen)
    assert any(name.startswith("image_encoder.") for name in frozen)

    state = tmp_path / "run" / "state-00000002"
    saved = file_tensors(state, "model*.safetensors")
    assert set(saved) == set(trained) and not set(saved) & frozen
    assert all(".base_layer." not in key and not key.startswith("image_encoder.") for key in saved)
    # The bytes of the state's weights are those of the trained parameters (float32), nothing more.
    trained_bytes = sum(parameter.numel() * 4 for parameter in trained.values())
    assert sum(tensor.numel() * tensor.element_size() for tensor in saved.values()) == trained_bytes
    frozen_bytes = sum(folder_bytes(folder) for folder in (weights["llava"], weights["clip"], weights["sd"] / "vae"))
    state_bytes = folder_bytes(state)
    # The weights, AdamW's two moments (2x), the RNG states and headers (a step count per tensor): no room
    # for the frozen bases' bytes.
    assert frozen_bytes > 2 * 1024 * 1024
    assert 3 * trained_bytes < state_bytes < 3 * trained_bytes + 1024 * 1024

    # The pipeline: the model's safetensors hold the trained tensors (and the UNet's buffers, none here);
    # LLaVA, CLIP and the VAE are references.
    pipeline_weights = sum(path.stat().st_size for path in summary.pipeline_dir.rglob("*.safetensors"))
    model_weights = file_tensors(summary.pipeline_dir / "model", "diffusion_pytorch_model*.safetensors")
    assert set(model_weights) == set(trained)
    print(f"\npaper-format stand-in: trained parameters {trained_bytes} bytes, safetensors in the pipeline "
          f"{pipeline_weights} bytes, state folder {state_bytes} bytes, frozen bases {frozen_bytes} bytes")
    assert trained_bytes < pipeline_weights < trained_bytes + 64 * 1024  # safetensors headers only


def folder_bytes(folder):
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
