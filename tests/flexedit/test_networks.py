"""FlexEdit networks at tiny size: shapes through every stage, ablation switches, lambda, conv_in widening."""

from __future__ import annotations

import pytest
import torch

from flexedit_model.attention import DecoupledCrossAttnProcessor
from flexedit_model.build import build_components
from flexedit_model.config import load_config
from flexedit_model.vllm import build_prompt, clip_pixels, collate_prompts
from fsmi_bench.errors import MissingWeightsError
from tests.support.flexedit_inputs import toy_edit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    config = load_config("tiny")
    model, vae, tokenizer = build_components(config, seed=0)
    return config, model.eval(), vae, tokenizer


@pytest.fixture(scope="module")
def train_content_small():
    """The first 24 training examples of ``mini`` at the tiny config's size."""
    from flexedit_model.training.data import TrainingExamples, load_training_content

    examples = TrainingExamples(load_training_content("mini", "train"), load_config("tiny").resolution, seed=0,
                                multi_fraction=1.0)
    return [examples[index] for index in range(24)]


def _batch(model, tokenizer, with_subject=True):
    scene, mask, subject = toy_edit()
    prompts = [build_prompt(tokenizer, model.vllm.config, len(model.config.image_token_ids), scene, mask,
                            "add the dog", subject if with_subject else None, "dog")]
    return collate_prompts(prompts, tokenizer.pad_token_id, model.vllm.config.vision_config.image_size), scene, subject


def test_shapes_through_every_stage(tiny):
    config, model, vae, tokenizer = tiny
    batch, scene, subject = _batch(model, tokenizer)
    with torch.no_grad():
        states, language_loss = model.image_token_states(batch, with_language_loss=True)
        assert states.shape == (1, config.num_image_tokens, config.vllm["hidden_size"])
        assert torch.isfinite(language_loss)
        edit_embeddings = model.qformer(states)
        width = config.unet["cross_attention_dim"]
        assert edit_embeddings.shape == (1, config.qformer["num_query_tokens"], width)
        scene_clip = clip_pixels([scene], config.image_encoder["image_size"])
        subject_clip = clip_pixels([subject], config.image_encoder["image_size"])
        condition = model.edit_condition(states, scene_clip, subject_clip)
        tokens = config.qformer["num_query_tokens"] + config.adapter["num_subject_tokens"]
        assert condition.shape == (1, tokens, width)
        assert model.null_edit_condition(2).shape == (2, tokens, width)
        latents = torch.randn(1, 4, 8, 8)
        noise = model.predict_noise(latents, torch.tensor([10]), torch.randn(1, 4, 8, 8), condition, 1.0)
    assert noise.shape == latents.shape
    assert model.unet.conv_in.in_channels == 8


def test_the_qformer_passes_its_input_through_at_initialisation(tiny):
    # The mask reaches the UNet only through the <img_i> states and the Q-Former. With BLIP-2's init
    # (std 0.02) a from-scratch Q-Former's output is its own query tokens: e moved by under 1% when its
    # input was replaced, so no gradient told the VLLM to read the mask.
    _, model, _, _ = tiny
    generator = torch.Generator().manual_seed(0)
    width = model.vllm.config.text_config.hidden_size
    first, second = (torch.randn(4, len(model.config.image_token_ids), width, generator=generator) for _ in range(2))
    with torch.no_grad():
        change = torch.linalg.norm(model.qformer(first) - model.qformer(second)) / torch.linalg.norm(model.qformer(first))
    assert change > 0.3


def test_inference_reads_the_image_tokens_in_their_training_context(tiny):
    # Training teacher-forces "<img_0>..<img_N> The mask means '<label>'"; inference feeds the prompt and
    # the <img_i> tokens only. The states the Q-Former sees must be the same in both.
    _, model, _, tokenizer = tiny
    scene, mask, subject = toy_edit()
    count, llava = len(model.config.image_token_ids), model.vllm.config
    size = llava.vision_config.image_size
    trained = collate_prompts([build_prompt(tokenizer, llava, count, scene, mask, "add the dog", subject, "dog")],
                              tokenizer.pad_token_id, size)
    inferred = collate_prompts([build_prompt(tokenizer, llava, count, scene, mask, "add the dog", subject, None)],
                               tokenizer.pad_token_id, size)
    assert inferred.input_ids.shape[1] < trained.input_ids.shape[1]
    assert inferred.input_ids[0, -count:].tolist() == list(model.config.image_token_ids)
    with torch.no_grad():
        from_training, _ = model.image_token_states(trained, with_language_loss=True)
        from_inference, _ = model.image_token_states(inferred)
    assert torch.allclose(from_training, from_inference, atol=1e-5)


def test_image_tokens_are_special_and_unique(tiny):
    _, model, _, tokenizer = tiny
    ids = list(model.config.image_token_ids)
    assert len(set(ids)) == len(ids) == 4
    assert tokenizer.convert_ids_to_tokens(ids) == ["<img_0>", "<img_1>", "<img_2>", "<img_3>"]
    assert any("lora_A" in name for name, _ in model.vllm.named_parameters())


def test_ablation_switches_remove_their_modules(tiny):
    config, full_model, _, _ = tiny
    without_ca, _, _ = build_components(config.with_adapter(use_ca=False))
    without_dca, _, _ = build_components(config.with_adapter(use_dca=False))
    assert hasattr(full_model.adapter, "scene_attention") and not hasattr(without_ca.adapter, "scene_attention")
    # Without DCA the subject is kept (Sec. 4.3: DCA replaced with a general cross-attention): f2's linear
    # layer stays, the second key/value projections of every cross-attention layer go.
    assert hasattr(full_model.adapter, "subject_projection") and hasattr(without_dca.adapter, "subject_projection")
    dca = [p for p in full_model.unet.attn_processors.values() if isinstance(p, DecoupledCrossAttnProcessor)]
    cross_layers = [name for name in full_model.unet.attn_processors if name.endswith("attn2.processor")]
    assert len(dca) == len(cross_layers) > 0
    assert not any(isinstance(p, DecoupledCrossAttnProcessor) for p in without_dca.unet.attn_processors.values())
    assert not any("_subject" in name for name in without_dca.state_dict())
    size = sum(p.numel() for p in full_model.parameters())
    assert sum(p.numel() for p in without_ca.parameters()) < size
    assert sum(p.numel() for p in without_dca.parameters()) < size


def test_without_dca_the_unet_reads_f1_and_f2_in_one_general_cross_attention(tiny):
    config, _, _, tokenizer = tiny
    model, _, _ = build_components(config.with_adapter(use_dca=False))
    model.eval()
    batch, scene, subject = _batch(model, tokenizer)
    size = config.image_encoder["image_size"]
    with torch.no_grad():
        states, _ = model.image_token_states(batch)
        condition = model.edit_condition(states, clip_pixels([scene], size), clip_pixels([subject], size))
        other = model.edit_condition(states, clip_pixels([scene], size), clip_pixels([scene], size))
    queries, subject_tokens = config.qformer["num_query_tokens"], config.adapter["num_subject_tokens"]
    assert condition.shape[1] == queries + subject_tokens
    assert not torch.allclose(condition[:, queries:], other[:, queries:])  # f2 is the subject's
    torch.manual_seed(1)
    latents, scene_latents, step = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        with_subject = model.predict_noise(latents, step, scene_latents, condition, 1.0)
        # The UNet's own cross-attention over the whole sequence, no second projections, no lambda.
        plain = model.unet(torch.cat([latents, scene_latents], dim=1), step, encoder_hidden_states=condition).sample
        other_subject = model.predict_noise(latents, step, scene_latents, other, torch.tensor([1.0]))
        single = model.predict_noise(latents, step, scene_latents, condition, 0.0)
        single_other = model.predict_noise(latents, step, scene_latents, other, torch.tensor([0.0]))
        scene_only = model.unet(torch.cat([latents, scene_latents], dim=1), step,
                                encoder_hidden_states=condition[:, :queries]).sample
    assert torch.allclose(with_subject, plain, atol=1e-6)
    assert not torch.allclose(with_subject, other_subject, atol=1e-4)  # the subject reaches the UNet
    # lambda = 0 (single-image edits): f1 alone, whatever sits in the subject slots.
    assert torch.allclose(single, scene_only, atol=1e-6) and torch.equal(single, single_other)
    assert model.null_edit_condition(2).shape == (2, queries + subject_tokens, condition.shape[-1])


def test_without_dca_the_subject_projection_trains(tiny, train_content_small):
    from flexedit_model.build import build_scheduler
    from flexedit_model.training.losses import collate_examples, flexedit_loss

    config, _, _, tokenizer = tiny
    model, vae, _ = build_components(config.with_adapter(use_dca=False))
    examples = [example for example in train_content_small if example.subject is not None][:2]
    assert examples
    batch = collate_examples(examples, tokenizer, model)
    parts = flexedit_loss(model, vae, build_scheduler(config, "ddpm"), batch, torch.Generator().manual_seed(0),
                          condition_dropout=0.0)
    parts.total.backward()
    assert model.adapter.subject_projection.weight.grad.abs().sum() > 0


def test_lambda_zero_makes_single_image_edit_independent_of_subject(tiny):
    _, model, _, _ = tiny
    torch.manual_seed(1)
    scene_tokens = torch.randn(1, 4, 32)
    latents, scene_latents, step = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([500])
    with_a = torch.cat([scene_tokens, torch.randn(1, 2, 32)], dim=1)
    with_b = torch.cat([scene_tokens, torch.randn(1, 2, 32) * 3], dim=1)
    with torch.no_grad():
        zero_a = model.predict_noise(latents, step, scene_latents, with_a, 0.0)
        zero_b = model.predict_noise(latents, step, scene_latents, with_b, torch.tensor([0.0]))
        one_a = model.predict_noise(latents, step, scene_latents, with_a, 1.0)
        one_b = model.predict_noise(latents, step, scene_latents, with_b, 1.0)
    assert torch.equal(zero_a, zero_b)
    assert not torch.allclose(one_a, one_b)


def test_widened_conv_in_starts_as_the_pretrained_unet():
    from diffusers import UNet2DConditionModel

    from flexedit_model.unet import widen_conv_in

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=8,
        attention_head_dim=4, norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).eval()
    latents, text = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8)
    with torch.no_grad():
        before = unet(latents, 5, encoder_hidden_states=text).sample
        widen_conv_in(unet, 8)
        after = unet(torch.cat([latents, torch.randn(1, 4, 8, 8)], dim=1), 5, encoder_hidden_states=text).sample
    assert unet.config.in_channels == 8
    assert torch.allclose(before, after, atol=1e-6)


def test_paper_config_without_weights_names_what_is_needed(monkeypatch):
    for variable in ("FSMI_LLAVA_PATH", "FSMI_CLIP_PATH", "FSMI_SD15_PATH"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError, match="FSMI_LLAVA_PATH"):
        build_components(load_config("paper"))
    monkeypatch.setenv("FSMI_LLAVA_PATH", "/nonexistent/llava")
    with pytest.raises(MissingWeightsError, match="/nonexistent/llava/config.json"):
        build_components(load_config("paper"))


def test_gather_image_token_states_matches_a_loop_and_checks_each_token():
    from flexedit_model.vllm import gather_image_token_states

    generator = torch.Generator().manual_seed(0)
    tokens = [100, 101, 102]
    input_ids = torch.randint(0, 50, (4, 20), generator=generator)
    for row in range(4):
        input_ids[row, torch.randperm(20, generator=generator)[:3]] = torch.tensor(tokens)
    states = torch.randn(4, 20, 8, generator=generator)
    expected = torch.stack([torch.stack([states[row, int((input_ids[row] == token).nonzero()[0, 0])]
                                         for token in tokens]) for row in range(4)])
    assert torch.equal(gather_image_token_states(states, input_ids, tokens), expected)
    missing = input_ids.clone()
    missing[2][missing[2] == 101] = 0
    with pytest.raises(ValueError, match="row 2: expected exactly one token id 101, found 0"):
        gather_image_token_states(states, missing, tokens)
    twice = input_ids.clone()
    twice[1, (twice[1] != 102).nonzero()[0, 0]] = 102
    with pytest.raises(ValueError, match="row 1: expected exactly one token id 102, found 2"):
        gather_image_token_states(states, twice, tokens)


def test_language_loss_targets_only_the_text_after_the_first_word(tiny):
    # The <img_i> tokens and the first word after them are the same in every example; predicting them
    # would push the <img_i> states, which carry the mask, towards constants.
    _, model, _, tokenizer = tiny
    scene, mask, _ = toy_edit()
    count, llava = len(model.config.image_token_ids), model.vllm.config
    prompt = build_prompt(tokenizer, llava, count, scene, mask, "remove the cup", None, "cup")
    batch = collate_prompts([prompt], tokenizer.pad_token_id, llava.vision_config.image_size)
    start = len(prompt.prompt_ids) + count + 1
    end = len(prompt.prompt_ids) + len(prompt.answer_ids)
    assert batch.labels[0, :start].eq(-100).all()
    assert batch.labels[0, start:end].tolist() == prompt.answer_ids[count + 1:]
    assert batch.labels[0, end - 1] == tokenizer.eos_token_id
    assert "cup" in tokenizer.decode(batch.labels[0, start:end].tolist())
    unlabelled = build_prompt(tokenizer, llava, count, scene, mask, "remove the cup", None, None)
    assert collate_prompts([unlabelled], tokenizer.pad_token_id, llava.vision_config.image_size).labels.eq(-100).all()
