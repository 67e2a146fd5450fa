"""The diffusers methods end to end with tiny, randomly initialised components of the real classes.

Each pipeline is built at tiny size after a fixed seed, saved with ``save_pretrained`` to a temporary
folder and loaded back through the adapter's own loading code (``weights`` config key). Outputs from
random weights are only checked for shape, dtype and determinism, never for quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from baselines.diffusers_common import (  # noqa: E402
    DiffusersOptions,
    resize_mask,
    resolve_weights,
    working_size,
)
from baselines.instruct_pix2pix import InstructPix2Pix  # noqa: E402
from baselines.paint_by_example import PaintByExample  # noqa: E402
from baselines.sd_inpaint import SdInpaint  # noqa: E402
from fsmi_bench.errors import BadInputError, MissingWeightsError  # noqa: E402
from fsmi_bench.run.method import EditRequest  # noqa: E402

SCENE_HEIGHT, SCENE_WIDTH = 40, 56  # not multiples of 8 on purpose
FAST = {"num_inference_steps": 2, "working_long_side": 32}


def _tiny_tokenizer(folder):
    """A CLIPTokenizer from a tiny BPE vocabulary written to disk (works offline)."""
    vocab = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "lo", "l</w>", "w</w>", "r</w>", "t</w>",
             "low</w>", "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _tiny_unet(in_channels):
    return diffusers.UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, sample_size=16,
        in_channels=in_channels, out_channels=4, attention_head_dim=4, cross_attention_dim=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def _tiny_vae():
    return diffusers.AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )


def _tiny_text_encoder():
    config = transformers.CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=1000, layer_norm_eps=1e-5,
    )
    return transformers.CLIPTextModel(config)


def _save_text_pipeline(pipeline_class, in_channels, folder):
    torch.manual_seed(0)
    pipeline = pipeline_class(
        vae=_tiny_vae(), text_encoder=_tiny_text_encoder(), tokenizer=_tiny_tokenizer(folder / "_tok"),
        unet=_tiny_unet(in_channels), scheduler=diffusers.PNDMScheduler(skip_prk_steps=True, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ip2p_folder(tmp_path_factory):
    return _save_text_pipeline(diffusers.StableDiffusionInstructPix2PixPipeline, 8, tmp_path_factory.mktemp("ip2p"))


@pytest.fixture(scope="module")
def inpaint_folder(tmp_path_factory):
    return _save_text_pipeline(diffusers.StableDiffusionInpaintPipeline, 9, tmp_path_factory.mktemp("inpaint"))


@pytest.fixture(scope="module")
def pbe_folder(tmp_path_factory):
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder

    torch.manual_seed(0)
    vision = transformers.CLIPVisionConfig(
        hidden_size=32, projection_dim=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        image_size=32, patch_size=4, layer_norm_eps=1e-5,
    )
    pipeline = diffusers.PaintByExamplePipeline(
        vae=_tiny_vae(), image_encoder=PaintByExampleImageEncoder(vision), unet=_tiny_unet(9),
        scheduler=diffusers.PNDMScheduler(skip_prk_steps=True, steps_offset=1), safety_checker=None,
        feature_extractor=transformers.CLIPImageProcessor(crop_size=32, size=32), requires_safety_checker=False,
    )
    folder = tmp_path_factory.mktemp("pbe")
    pipeline.save_pretrained(folder)
    return folder


def _request(seed=7, with_subject=True, op="add"):
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (SCENE_HEIGHT, SCENE_WIDTH, 3), dtype=np.uint8)
    subject = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8) if with_subject else None
    mask = np.zeros((SCENE_HEIGHT, SCENE_WIDTH), dtype=bool)
    mask[10:30, 15:40] = True
    return EditRequest(scene=scene, subject=subject, mask=mask, instruction="add a lower tower", label="tower",
                       seed=seed, case_id="multi_0001", mask_type="circle", kind="multi" if with_subject else "single",
                       op=op)


def _check_output(output):
    assert output.shape == (SCENE_HEIGHT, SCENE_WIDTH, 3)
    assert output.dtype == np.uint8


@pytest.mark.parametrize("method_class, fixture_name", [
    (InstructPix2Pix, "ip2p_folder"),
    (SdInpaint, "inpaint_folder"),
    (PaintByExample, "pbe_folder"),
])
def test_method_end_to_end_is_deterministic(method_class, fixture_name, request):
    folder = request.getfixturevalue(fixture_name)
    method = method_class({"weights": str(folder), **FAST})
    method.setup()
    first = method.edit(_request(seed=7))
    again = method.edit(_request(seed=7))
    other = method.edit(_request(seed=8))
    _check_output(first)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), "a different seed must give different noise"
    assert method.weights() == {"pipeline": str(folder)}
    method.close()


def test_instruct_pix2pix_ignores_the_mask(ip2p_folder):
    method = InstructPix2Pix({"weights": str(ip2p_folder), **FAST})
    base = _request()
    other_mask = EditRequest(**{**base.__dict__, "mask": ~base.mask})
    np.testing.assert_array_equal(method.edit(base), method.edit(other_mask))


def test_sd_inpaint_prompt_comes_from_label_or_remove_prompt():
    method = SdInpaint({"weights": "unused", "prompt_template": "a photo of a {label}"})
    assert method.prompt_for(_request()) == "a photo of a tower"
    assert method.prompt_for(_request(op="remove")) == "empty background"


def test_paint_by_example_needs_a_subject(pbe_folder):
    method = PaintByExample({"weights": str(pbe_folder), **FAST})
    with pytest.raises(BadInputError, match="subject"):
        method.edit(_request(with_subject=False))


def test_missing_weights_names_model_flag_and_cache(tmp_path):
    method = SdInpaint({"model_id": "someone/not-cached-model"})
    with pytest.raises(MissingWeightsError) as caught:
        method.setup()
    message = str(caught.value)
    assert "someone/not-cached-model" in message and "--weights" in message and "hub" in message
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        resolve_weights(DiffusersOptions(weights=str(tmp_path), model_id="x/y"), "sd-inpaint")


def test_options_are_validated():
    with pytest.raises(BadInputError, match="unknown config"):
        InstructPix2Pix({"num_steps": 3})
    with pytest.raises(BadInputError, match="torch_dtype"):
        InstructPix2Pix({"torch_dtype": "float8"})


def test_working_size_keeps_aspect_and_multiple_of_8():
    assert working_size(480, 640) == (384, 512)
    assert working_size(40, 56, 32) == (24, 32)
    height, width = working_size(333, 1000)
    assert height % 8 == 0 and width == 512
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:5] = True
    resized = resize_mask(mask, (10, 14))
    assert resized.dtype == bool and resized.sum() == 4 * mask.sum()


def test_instruct_pix2pix_takes_100_steps_unless_told_otherwise():
    from baselines.instruct_pix2pix import InstructPix2Pix

    assert InstructPix2Pix({}).options.num_inference_steps == 100
    assert InstructPix2Pix({"num_inference_steps": 7}).options.num_inference_steps == 7
