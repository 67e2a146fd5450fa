"""Gradient accumulation (``training.gradient_accumulation_steps``): one update per step from the mean gradient
of its micro-batches, the examples a batch of the same effective size would see, and the effective batch
printed and recorded."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from flexedit_model.config import load_config
from fsmi_bench.errors import BadInputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def train_content():
    from flexedit_model.training.data import load_training_content

    return load_training_content("mini", "train")


def tiny(**training):
    config = load_config("tiny")
    return dataclasses.replace(config, training={**config.training, **training})


def test_an_accumulated_step_updates_with_the_mean_gradient_of_its_micro_batches(tmp_path, train_content):
    from flexedit_model.build import build_components, build_scheduler
    from flexedit_model.training import loop
    from flexedit_model.training.data_mix import parse_data
    from flexedit_model.training.losses import CollateSpec, flexedit_loss
    from flexedit_model.training.settings import TrainingSettings
    from flexedit_model.training.step import step_seed

    config = tiny(batch_size=2, gradient_accumulation_steps=2, checkpoint_every=1)
    summary = loop.train_flexedit(config, "mini", tmp_path / "run", steps=1, content=train_content, progress=False)
    saved = torch.load(tmp_path / "run" / "state-00000001" / "optimizer.bin", weights_only=False)

    # The same step by hand: each micro-batch's loss with the seeds the loop draws, backward of their mean,
    # clipped once.
    settings = TrainingSettings.from_config(config.training)
    model, vae, tokenizer = build_components(config, seed=settings.seed)
    parameters = loop.set_trainable(model, config)
    model.train()
    examples = loop._training_examples(config, settings, parse_data("mini"), train_content)
    micro_batches = loop.StepBatches(examples, tokenizer, CollateSpec.from_model(model), 2, 1, 0, 0, 1, 2)[0]
    assert len(micro_batches) == 2
    scheduler, totals, first_only = build_scheduler(config, "ddpm"), [], None
    for micro, batch in enumerate(micro_batches):
        seed = step_seed(settings.seed, 0, micro)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            parts = flexedit_loss(model, vae, scheduler, batch, torch.Generator().manual_seed(seed),
                                  settings.condition_dropout, settings.language_loss_weight,
                                  config.inference["subject_scale"], settings.high_noise_bias,
                                  settings.layout_loss_weight)
        (parts.total / 2).backward()
        totals.append(float(parts.total.detach()))
        if micro == 0:
            first_only = [parameter.grad.clone() for parameter in parameters]
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)

    state = saved["state"]
    assert len(state) == len(parameters) and {float(entry["step"]) for entry in state.values()} == {1.0}
    beta1 = saved["param_groups"][0]["betas"][0]
    for index, parameter in enumerate(parameters):
        assert torch.allclose(state[index]["exp_avg"], (1 - beta1) * parameter.grad, rtol=1e-4, atol=1e-8), index
    # The first micro-batch alone would have given another update.
    assert not all(torch.allclose(state[index]["exp_avg"], (1 - beta1) * grad, rtol=1e-2, atol=1e-6)
                   for index, grad in enumerate(first_only))
    assert summary.losses[0] == pytest.approx(sum(totals) / 2, rel=1e-5)


def test_micro_batches_hold_the_examples_of_one_batch_of_the_effective_size(monkeypatch):
    from flexedit_model.training import losses
    from flexedit_model.training.loop import StepBatches

    monkeypatch.setattr(losses, "collate_examples", lambda examples, tokenizer, spec: list(examples))
    examples = list(range(1000))
    for step in (0, 3):
        for rank in (0, 1):
            whole = StepBatches(examples, None, None, 8, 2, rank, step, step + 1)[0]
            split = StepBatches(examples, None, None, 2, 2, rank, step, step + 1, accumulation=4)[0]
            assert len(whole) == 1 and len(split) == 4
            assert [example for micro in split for example in micro] == whole[0]


def test_the_effective_batch_is_printed_at_start_and_recorded(tmp_path, train_content, capsys):
    from flexedit_model.training.loop import train_flexedit

    config = tiny(batch_size=2, gradient_accumulation_steps=3, checkpoint_every=10)
    summary = train_flexedit(config, "mini", tmp_path / "run", steps=2, content=train_content)
    err = capsys.readouterr().err
    assert "effective batch 6 = 2 per micro-batch x 3 accumulated x 1 process; steps 0 to 2: 12 examples" in err
    run = json.loads((tmp_path / "run" / "train.json").read_text())
    assert run["config"]["training"]["gradient_accumulation_steps"] == 3
    assert run["effective_batch_size"] == 6 and run["samples_at_last_step"] == 12 and run["num_processes"] == 1
    assert summary.samples_per_second > 0


@pytest.mark.parametrize("value", [0, 2.5, "four", -1])
def test_a_bad_accumulation_is_one_line_naming_the_key(tmp_path, value):
    from flexedit_model.training.loop import train_flexedit

    with pytest.raises(BadInputError, match=r"training\.gradient_accumulation_steps must be a whole number, 1 or more"):
        train_flexedit(tiny(gradient_accumulation_steps=value), "mini", tmp_path / "run", steps=1, progress=False)
    assert not (tmp_path / "run").exists()


def test_the_paper_budget_is_the_cited_recipe():
    # diffusers' examples/instruct_pix2pix README: --train_batch_size=4 --gradient_accumulation_steps=4
    # --max_train_steps=15000, on one GPU; max_train_steps counts optimisation steps.
    from flexedit_model.training.settings import TrainingSettings

    paper = load_config("paper")
    settings = TrainingSettings.from_config(paper.training)
    assert (settings.batch_size, settings.gradient_accumulation_steps, settings.steps) == (4, 4, 15000)
    assert settings.steps * settings.effective_batch(processes=1) == 240_000
    source = next(text for key, text in paper.extra["sources"].items() if "gradient_accumulation_steps" in key)
    assert "--gradient_accumulation_steps=4" in source and "240,000" in source


def test_every_paper_value_names_its_source():
    # Each value of configs/paper.json that shapes the model or its training has an entry in extra.sources
    # (the paper, a named convention, or this project); where the user's weights live is not a value.
    paper = load_config("paper")
    keys = " ".join(paper.extra["sources"])
    locations = {"source", "path", "env", "subfolder", "kind"}
    missing = [name for name in ("resolution", "num_image_tokens") if name not in keys]
    for section in ("vllm", "qformer", "image_encoder", "adapter", "unet", "vae", "scheduler", "inference", "training"):
        if section in paper.extra["sources"]:
            continue  # one source for the whole section
        missing += [f"{section}.{key}" for key in getattr(paper, section) if key not in locations
                    and f"{section}.{key}" not in keys]
    assert not missing


def test_an_accumulating_run_resumed_ends_as_an_uninterrupted_one(tmp_path, train_content):
    from safetensors.torch import load_file

    from flexedit_model.training.loop import train_flexedit

    config = tiny(batch_size=2, gradient_accumulation_steps=2, checkpoint_every=1)
    whole = train_flexedit(config, "mini", tmp_path / "whole", steps=3, content=train_content, progress=False)
    train_flexedit(config, "mini", tmp_path / "parts", steps=2, content=train_content, progress=False)
    resumed = train_flexedit(config, "mini", tmp_path / "parts", steps=3, resume=True, content=train_content,
                             progress=False)
    assert resumed.first_step == 2 and resumed.losses == whole.losses[2:]
    one = load_file(str(tmp_path / "whole" / "state-00000003" / "model.safetensors"))
    other = load_file(str(tmp_path / "parts" / "state-00000003" / "model.safetensors"))
    assert one.keys() == other.keys() and all(torch.equal(one[key], other[key]) for key in one)
