"""FlexEditPipeline at tiny size: output contract, seeding, guidance, save/load identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexedit_model.build import build_pipeline
from flexedit_model.config import load_config
from tests.support.flexedit_inputs import toy_edit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipeline():
    pipe = build_pipeline(load_config("tiny"), seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_output_is_rgb_uint8_at_the_scene_size_and_seeded(pipeline):
    scene, mask, subject = toy_edit()
    first = pipeline(scene, mask, "add the dog from the second image", subject=subject, seed=3)
    again = pipeline(scene, mask, "add the dog from the second image", subject=subject, seed=3)
    other = pipeline(scene, mask, "add the dog from the second image", subject=subject, seed=4)
    assert first.image.dtype == np.uint8 and first.image.shape == scene.shape
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    assert first.answer is None  # the text answer is generated only when asked for


def test_return_answer_adds_the_text_and_leaves_the_image_alone(pipeline):
    scene, mask, subject = toy_edit()
    plain = pipeline(scene, mask, "add the dog", subject=subject, seed=2)
    answered = pipeline(scene, mask, "add the dog", subject=subject, seed=2, return_answer=True)
    assert isinstance(answered.answer, str)
    assert np.array_equal(plain.image, answered.image)


def test_guidance_scales_change_the_result(pipeline):
    scene, mask, _ = toy_edit()
    guided = pipeline(scene, mask, "remove the cup", seed=1)
    unguided = pipeline(scene, mask, "remove the cup", seed=1, text_guidance=1.0, image_guidance=1.0)
    assert not np.array_equal(guided.image, unguided.image)


def test_bad_mask_is_refused(pipeline):
    scene, mask, _ = toy_edit()
    with pytest.raises(ValueError, match="mask"):
        pipeline(scene, mask[:-1], "remove the cup")


def test_save_and_load_give_identical_outputs(pipeline, tmp_path):
    from flexedit_model.pipeline_flexedit import FlexEditPipeline

    scene, mask, subject = toy_edit(seed=5)
    pipeline.save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "model" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = FlexEditPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    saved_state, loaded_state = pipeline.model.state_dict(), loaded.model.state_dict()
    assert saved_state.keys() == loaded_state.keys()
    assert all(torch.equal(saved_state[key], loaded_state[key]) for key in saved_state)  # bit-identical weights
    public = lambda config: {key: value for key, value in config.items() if not key.startswith("_")}  # noqa: E731
    assert public(loaded.scheduler.config) == public(pipeline.scheduler.config)
    for kwargs in ({"subject": subject}, {}):
        expected = pipeline(scene, mask, "put the cat here", seed=9, return_answer=True, **kwargs)
        actual = loaded(scene, mask, "put the cat here", seed=9, return_answer=True, **kwargs)
        # Same weights, same numbers up to float rounding: loaded safetensors weights sit at other memory
        # alignments, for which BLAS may sum in another order (about 1e-7 apart), and a pixel can land
        # on the other side of a uint8 rounding boundary. Anything wrongly loaded is far further off.
        difference = np.abs(expected.image.astype(int) - actual.image.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01
        assert expected.answer == actual.answer


def test_encode_condition_gives_what_the_unet_reads(pipeline):
    scene, mask, subject = toy_edit()
    model = pipeline.model
    single, answer = pipeline.encode_condition(scene, mask, "remove the cup")
    multi, _ = pipeline.encode_condition(scene, mask, "add the dog", subject=subject)
    tokens = model.qformer.query_tokens.shape[1] + model.config.num_subject_tokens
    assert single.shape == multi.shape == (1, tokens, model.unet.config.cross_attention_dim)
    assert answer is None and not single.requires_grad
    assert torch.count_nonzero(single[:, -model.config.num_subject_tokens:]) == 0  # no subject: f2 = 0
    assert torch.count_nonzero(multi[:, -model.config.num_subject_tokens:]) > 0
    moved = np.roll(mask, 12, axis=1)  # the VLLM sees the mask, so c depends on it
    assert not torch.equal(pipeline.encode_condition(scene, moved, "remove the cup")[0], single)
