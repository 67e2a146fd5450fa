"""FlexEdit training at tiny size: the loss falls on a fixed batch, resume, data splits stay disjoint."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch

from flexedit_model.config import load_config
from fsmi_bench.errors import BadInputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def train_content():
    from flexedit_model.training.data import load_training_content

    return load_training_content("mini", "train")


def assert_training_rejects(config, key: str, values, out) -> None:
    """Training with each bad ``training[key]`` is a BadInputError naming the key, and writes nothing."""
    from dataclasses import replace

    from flexedit_model.training.loop import train_flexedit

    for value in values:
        bad = replace(config, training={**config.training, key: value})
        with pytest.raises(BadInputError, match=key):
            train_flexedit(bad, "mini", out, steps=1)
        assert not out.exists()


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(train_content):
    from flexedit_model.build import build_components, build_scheduler
    from flexedit_model.training.data import TrainingExamples
    from flexedit_model.training.loop import set_trainable
    from flexedit_model.training.losses import collate_examples, flexedit_loss

    config = load_config("tiny")
    model, vae, tokenizer = build_components(config, seed=0)
    parameters = set_trainable(model, config)
    assert not any(p.requires_grad for n, p in model.vllm.named_parameters() if "q_proj.base_layer" in n)
    model.train()
    examples = TrainingExamples(train_content, config.resolution, seed=0)
    batch = collate_examples([examples[index] for index in range(4)], tokenizer, model)
    scheduler = build_scheduler(config, "ddpm")
    optimizer = torch.optim.AdamW(parameters, lr=2e-3)

    def loss():
        return flexedit_loss(model, vae, scheduler, batch, torch.Generator().manual_seed(0), condition_dropout=0.0)

    first = loss()
    for _ in range(6):
        optimizer.zero_grad()
        loss().total.backward()
        optimizer.step()
    last = loss()
    assert float(last.total.detach()) < 0.9 * float(first.total.detach())
    assert float(last.language) < float(first.language)
    assert float(last.diffusion) < float(first.diffusion)


def test_high_noise_bias_draws_noisier_timesteps_and_rejects_bad_values(tmp_path):
    from flexedit_model.training.losses import sample_timesteps

    def share_in_noisier_half(bias):
        timesteps = sample_timesteps(1000, 20_000, torch.Generator().manual_seed(0), bias)
        assert 0 <= int(timesteps.min()) and int(timesteps.max()) < 1000
        return float((timesteps >= 500).float().mean())

    assert share_in_noisier_half(1.0) == pytest.approx(0.5, abs=0.02)
    assert share_in_noisier_half(2.0) == pytest.approx(0.5 ** 0.5, abs=0.02)  # t >= T/2 <=> u <= 0.707
    assert_training_rejects(load_config("tiny"), "high_noise_bias", (0, -1.0, "strong"), tmp_path / "run")


def test_layout_loss_reads_the_region_from_e_and_trains_the_qformer(tmp_path, train_content):
    from dataclasses import replace

    from flexedit_model.build import build_components, build_scheduler
    from flexedit_model.training.data import TrainingExamples
    from flexedit_model.training.losses import collate_examples, flexedit_loss

    config = load_config("tiny")
    assert not hasattr(build_components(config, seed=0)[0], "layout_head")  # off unless asked for
    config = replace(config, training={**config.training, "layout_loss_weight": 1.0})
    model, vae, tokenizer = build_components(config, seed=0)
    assert model.config.layout_grid == 8
    model.eval()  # no dropout: the read-out below sees the same e as the loss
    examples = TrainingExamples(train_content, config.resolution, seed=0, mask_task_fraction=1.0)
    batch = collate_examples([examples[index] for index in range(3)], tokenizer, model)
    scheduler = build_scheduler(config, "ddpm")

    def loss(weight):
        return flexedit_loss(model, vae, scheduler, batch, torch.Generator().manual_seed(0), condition_dropout=0.0,
                             layout_loss_weight=weight)

    without, with_layout = loss(0.0), loss(2.0)
    # The loss by hand: BCE of the read-out against each cell's share of the true region, per example.
    logits = model.layout_logits(model.qformer(model.image_token_states(batch.vllm)[0])).detach()
    side = config.resolution // 8

    def share(index):  # each cell's share of the region
        return torch.from_numpy(examples[index].region.astype(np.float32)).view(8, side, 8, side).mean(dim=(1, 3))

    assert 0 < float(share(0).sum()) < 64
    expected = float(torch.stack([torch.nn.functional.binary_cross_entropy_with_logits(logits[index], share(index))
                                  for index in range(3)]).mean())
    assert float(with_layout.layout) == pytest.approx(expected, rel=1e-4)
    assert float(without.layout) == 0.0
    assert float((with_layout.total - without.total).detach()) == pytest.approx(2.0 * expected, rel=1e-3)
    def qformer_gradient(weight):
        model.zero_grad()
        loss(weight).total.backward()
        return torch.cat([p.grad.flatten() for p in model.qformer.parameters()])

    # The layout term changes the Q-Former's gradient (it is what keeps the mask's place in e).
    plain, guided = qformer_gradient(0.0), qformer_gradient(2.0)
    assert float(torch.linalg.norm(guided - plain)) > 0.01 * float(torch.linalg.norm(plain))
    assert_training_rejects(config, "layout_loss_weight", (-0.5, "lots"), tmp_path / "run")


def test_train_then_resume(tmp_path, train_content):
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.loop import train_flexedit

    config = load_config("tiny")
    out = tmp_path / "run"
    first = train_flexedit(config, "mini", out, steps=2, content=train_content, progress=False)
    assert first.first_step == 0 and len(first.losses) == 2
    with pytest.raises(BadInputError, match="--resume"):
        train_flexedit(config, "mini", out, steps=3, content=train_content, progress=False)
    resumed = train_flexedit(config, "mini", out, steps=3, resume=True, content=train_content, progress=False)
    assert resumed.first_step == 2 and len(resumed.losses) == 1
    with open(out / "loss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2, 3]
    assert all(0.0 <= float(row["data_wait_fraction"]) <= 1.0 for row in rows)
    assert (out / "loss.png").is_file()
    assert sorted(path.name for path in out.glob("state-*")) == ["state-00000003"]
    loaded = FlexEditPipeline.from_pretrained(out / "pipeline")
    assert loaded.config.resolution == config.resolution


class Killed(Exception):
    """Stands for a kill: the run stops between steps, with nothing cleaned up or exported."""


def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, train_content, monkeypatch):
    from safetensors import safe_open

    from flexedit_model.build import build_components
    from flexedit_model.training import loop
    from flexedit_model.training.loop import set_trainable, train_flexedit

    config = load_config("tiny")  # checkpoint_every 2
    clean = train_flexedit(config, "mini", tmp_path / "clean", steps=4, content=train_content, progress=False)

    step = loop.optimisation_step

    def killed_at_step_3(trainer, settings, batch, index, learning_rate):
        if index == 2:
            raise Killed()
        return step(trainer, settings, batch, index, learning_rate)

    monkeypatch.setattr(loop, "optimisation_step", killed_at_step_3)
    with pytest.raises(Killed):
        train_flexedit(config, "mini", tmp_path / "killed", steps=4, content=train_content, progress=False)
    monkeypatch.undo()
    state = tmp_path / "killed" / "state-00000002"
    assert not (tmp_path / "killed" / "pipeline").exists() and state.is_dir()

    # The state holds the trained parameters (and the optimiser), not the frozen LLaVA weights under LoRA.
    model, _, _ = build_components(config, seed=0)
    set_trainable(model, config)
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    with safe_open(str(state / "model.safetensors"), "pt") as handle:
        saved = set(handle.keys())
    assert any(".base_layer." in key for key in model.state_dict())
    assert not any(".base_layer." in key for key in saved)
    assert any("lora_" in key for key in saved) and any(key.startswith("unet.") for key in saved)
    assert saved == trained and (state / "optimizer.bin").is_file()

    resumed = train_flexedit(config, "mini", tmp_path / "killed", steps=4, resume=True, content=train_content,
                             progress=False)
    assert resumed.first_step == 2 and resumed.losses == clean.losses[2:]
    with safe_open(str(clean.pipeline_dir / "model" / "diffusion_pytorch_model.safetensors"), "pt") as one, \
            safe_open(str(resumed.pipeline_dir / "model" / "diffusion_pytorch_model.safetensors"), "pt") as other:
        assert set(one.keys()) == set(other.keys())
        assert all(torch.equal(one.get_tensor(key), other.get_tensor(key)) for key in one.keys())
    with open(tmp_path / "killed" / "loss.csv", newline="") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2, 3, 4]


def test_a_state_of_another_config_is_refused_in_one_line(tmp_path, train_content):
    from dataclasses import replace

    from flexedit_model.training.loop import train_flexedit

    config = load_config("tiny")
    train_flexedit(config, "mini", tmp_path / "run", steps=2, content=train_content, progress=False)
    other = replace(config, training={**config.training, "layout_loss_weight": 1.0})  # adds a read-out head
    with pytest.raises(BadInputError, match="does not match this config") as caught:
        train_flexedit(other, "mini", tmp_path / "run", steps=3, resume=True, content=train_content, progress=False)
    assert "\n" not in str(caught.value)


def test_learning_rate_cools_down_over_the_end_of_the_run(tmp_path, train_content):
    from dataclasses import replace

    from flexedit_model.training.loop import cooldown_factor, train_flexedit

    assert [cooldown_factor(p, 0.2) for p in (0.0, 0.8, 0.9, 1.0)] == pytest.approx([1.0, 1.0, 0.5, 0.0])
    assert cooldown_factor(0.99, 0.0) == 1.0  # 0: constant rate
    config = load_config("tiny")
    base = float(config.training["learning_rate"])
    config = replace(config, training={**config.training, "lr_cooldown_fraction": 0.5})

    def logged_rates(out):
        with open(out / "loss.csv", newline="") as handle:
            return [float(row["learning_rate"]) for row in csv.DictReader(handle)]

    # By steps: full rate through the first half of 4 steps, then the fall (step 4 runs at 3/4 progress).
    train_flexedit(config, "mini", tmp_path / "steps", steps=4, content=train_content, progress=False)
    assert logged_rates(tmp_path / "steps") == pytest.approx([base, base, base, base / 2])
    # Resumed to 8 steps, the schedule is that of 8 steps: back to the full rate, then a new fall.
    train_flexedit(config, "mini", tmp_path / "steps", steps=8, resume=True, content=train_content, progress=False)
    assert logged_rates(tmp_path / "steps") == pytest.approx(
        [base, base, base, base / 2, base, base * 0.75, base / 2, base / 4])
    # A time limit that ends the run first sets the progress: here it is already spent, so the rate is 0.
    train_flexedit(config, "mini", tmp_path / "timed", steps=4, content=train_content, progress=False,
                   time_limit_s=1e-9)
    assert logged_rates(tmp_path / "timed") == [0.0]
    assert_training_rejects(config, "lr_cooldown_fraction", (-0.1, 1.5, "end"), tmp_path / "run")


@pytest.mark.parametrize("name", ["tiny", "small", "cpu-check", "paper"])
def test_every_shipped_config_parses_into_training_settings(name):
    from flexedit_model.config import available_configs
    from flexedit_model.training.settings import TrainingSettings

    assert name in available_configs()
    training = load_config(name).training
    settings = TrainingSettings.from_config(training)
    assert settings.batch_size == training["batch_size"] and settings.seed == training["seed"]
    assert settings.learning_rate == pytest.approx(training["learning_rate"])
    assert settings.mixed_precision == training["mixed_precision"]
    assert dict(settings.mask_task_mix) == pytest.approx(training["mask_task_mix"])


def test_training_settings_reject_unknown_keys_and_bad_values_naming_the_key():
    from flexedit_model.training.settings import TrainingSettings

    training = load_config("tiny").training
    with pytest.raises(BadInputError, match=r"training\.stepz \(did you mean training\.steps\?\)") as caught:
        TrainingSettings.from_config({**training, "stepz": 10})
    assert "\n" not in str(caught.value)
    for key, value in (("batch_size", 0), ("batch_size", 2.5), ("learning_rate", float("nan")), ("seed", -1),
                       ("log_every", "often"), ("condition_dropout", 1.5), ("gradient_checkpointing", "yes"),
                       ("mixed_precision", "fp64"), ("steps", 0), ("mask_task_mix", {"stickers": 1.0}),
                       ("mask_task_mix", [0.5, 0.5]), ("high_noise_bias", 0)):
        with pytest.raises(BadInputError, match=rf"training\.{key}") as caught:
            TrainingSettings.from_config({**training, key: value})
        assert "\n" not in str(caught.value)
    with pytest.raises(BadInputError, match=r"training\.high_noise_bias must be a number above 0 \(1 = uniform "
                                            r"timesteps\), got 'strong'"):
        TrainingSettings.from_config({**training, "high_noise_bias": "strong"})
    missing = {key: value for key, value in training.items() if key != "batch_size"}
    with pytest.raises(BadInputError, match=r"training\.batch_size is missing"):
        TrainingSettings.from_config(missing)


def test_training_settings_defaults_apply_for_missing_keys():
    from flexedit_model.training.settings import TrainingSettings

    optional = ("high_noise_bias", "layout_loss_weight", "layout_grid", "lr_cooldown_fraction",
                "mask_task_mix")
    training = {key: value for key, value in load_config("small").training.items() if key not in optional}
    settings = TrainingSettings.from_config(training)
    assert (settings.high_noise_bias, settings.layout_loss_weight, settings.layout_grid,
            settings.lr_cooldown_fraction, settings.mask_task_mix) == (1.0, 0.0, 8, 0.0, None)
    assert settings.batch_size == 128 and settings.mixed_precision == "bf16"


def test_split_is_deterministic_and_disjoint():
    from flexedit_model.training.data import fsmi_bench_split, load_training_content

    train = load_training_content("mini", "train")
    heldout = load_training_content("mini", "heldout")
    train_ids = {obj.object_id for obj in train.objects}
    heldout_ids = {obj.object_id for obj in heldout.objects}
    assert train_ids and heldout_ids and not train_ids & heldout_ids
    assert all(fsmi_bench_split(name) == "train" for name in train_ids)
    held_photos = {obj.photo_id for obj in heldout.objects}
    assert not {scene.photo_id for scene in train.scenes} & held_photos


def _sha(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()


def test_training_examples_never_equal_benchmark_cases(train_content):
    # Cases are compared by their input and GT images. (A subject picture is a rendering of one object,
    # so a benchmark built from all of `mini` can share one with training; held-out evaluation uses
    # the held-out objects only.)
    from flexedit_model.training.data import TrainingExamples
    from fsmi_bench.benchmark.builder import composite_case
    from fsmi_bench.benchmark.sources import load_source

    resolution = 32
    full = load_source("mini")
    benchmark = set()
    for kind in ("single", "multi"):
        for index in range(12):
            case = composite_case(full, kind, index, seed=0, size=resolution)
            benchmark.update({_sha(case.scene), _sha(case.gt)})
    examples = TrainingExamples(train_content, resolution, seed=0)
    seen = set()
    for index in range(24):
        example = examples[index]
        assert "heldout" not in example.origins
        seen.update({_sha(example.scene), _sha(example.target)})
    assert seen and not seen & benchmark


@pytest.mark.parametrize("kind", ["photo", "pasted", "shape"])
def test_mask_task_examples_of_each_kind(train_content, kind):
    from flexedit_model.training.data import SHAPE_LABEL, TrainingExamples, mask_image

    examples = TrainingExamples(train_content, 48, seed=3, mask_task_fraction=1.0, mask_task_mix={kind: 1.0})
    labels = {obj.label for obj in train_content.objects}
    train_ids = {f"mini:{obj.object_id}" for obj in train_content.objects}
    centres = []
    for index in range(12):
        example = examples[index]
        assert example.task == "mask" and example.scene.shape == (48, 48, 3) and example.region.shape == (48, 48)
        assert example.region.any() and example.mask.any()
        assert (example.mask & example.region).any()  # drawn over the object (the brush may spill)
        np.testing.assert_array_equal(example.target, mask_image(example.region))
        assert example.label == SHAPE_LABEL if kind == "shape" else example.label in labels
        if kind != "shape":
            assert train_ids & set(example.origins)
        rows, cols = np.nonzero(example.region)
        centres.append((rows.mean(), cols.mean()))
        again = examples[index]
        np.testing.assert_array_equal(again.scene, example.scene)
        np.testing.assert_array_equal(again.mask, example.mask)
    if kind != "photo":  # the point of pasting: objects turn up all over the image
        assert np.ptp(np.array(centres), axis=0).min() > 48 * 0.3


def test_mask_task_mix_draws_each_kind_and_rejects_bad_weights(train_content):
    from flexedit_model.training.data import SHAPE_LABEL, TrainingExamples

    examples = TrainingExamples(train_content, 32, seed=0, mask_task_fraction=1.0,
                                mask_task_mix={"pasted": 0.5, "shape": 0.5})
    labels = [examples[index].label for index in range(30)]
    assert 5 < labels.count(SHAPE_LABEL) < 25
    for bad in ({"stickers": 1.0}, {"photo": -1.0, "shape": 2.0}, {"photo": 0.0}):
        with pytest.raises(BadInputError, match="mask_task_mix"):
            TrainingExamples(train_content, 32, mask_task_mix=bad)


def test_shrink_content_scales_photos_once_and_keeps_masks_aligned(train_content):
    from flexedit_model.training.data import shrink_content
    from fsmi_bench.benchmark.compose import resize_mask

    small = shrink_content(train_content, 64)
    assert len(small.objects) == len(train_content.objects)
    for before, after in zip(train_content.objects, small.objects):
        assert max(after.image.shape[:2]) <= 64 and after.mask.shape == after.image.shape[:2]
        expected = resize_mask(before.mask, after.image.shape[1], after.image.shape[0])
        assert (after.mask == expected).all()
    by_photo = {}
    for obj in small.objects:  # objects of one photo share the one resized copy
        assert by_photo.setdefault(obj.photo_id, obj.image) is obj.image
    assert all(max(scene.image.shape[:2]) <= 64 for scene in small.scenes)


def test_pasted_examples_hold_other_objects_and_the_mask_picks_one(train_content, monkeypatch):
    # With one pasted object the model could draw "the pasted thing" without reading the mask.
    from flexedit_model.training import data

    for kind, paste_name in (("pasted", "_paste_object"), ("shape", "_paste_shape")):
        calls = []
        original = getattr(data, paste_name)

        def counting(*args, _original=original, **kwargs):
            calls.append(_original(*args, **kwargs))
            return calls[-1]

        monkeypatch.setattr(data, paste_name, counting)
        examples = data.TrainingExamples(train_content, 64, seed=1, mask_task_fraction=1.0, mask_task_mix={kind: 1.0})
        pastes_per_example = []
        for index in range(16):
            calls.clear()
            example = examples[index]
            pastes_per_example.append(len(calls))
            np.testing.assert_array_equal(example.region, calls[-1][1])  # the last paste is the marked one
            np.testing.assert_array_equal(example.scene, calls[-1][0])
        assert set(pastes_per_example) <= {1, 2, 3}
        assert 8 <= sum(count > 1 for count in pastes_per_example) <= 15, (kind, pastes_per_example)
