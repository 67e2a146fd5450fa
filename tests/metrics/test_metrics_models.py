"""LPIPS, CLIP-T/CLIP-I (both CLIP formats) and DINOv2 against independent references, on tiny random real
models."""

import types

import numpy as np
import pytest
import torch

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.metrics.clip_metric import ClipEncoder, HfClipEncoder, clip_t, cosine, load_hf_clip, load_open_clip
from fsmi_bench.metrics.dino_metric import DinoEncoder, load_dinov2
from fsmi_bench.metrics.lpips_metric import LpipsDistance, build_lpips, to_lpips_tensor
from tests.support.metric_models import (
    TINY_CLIP,
    write_lpips_files,
    write_tiny_clip,
    write_tiny_dinov2,
    write_tiny_hf_clip,
)


def _images(count, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def clip_encoder(weights_dir):
    path = write_tiny_clip(weights_dir)
    return ClipEncoder(*load_open_clip(TINY_CLIP, path))


@pytest.fixture(scope="module")
def lpips_alex(weights_dir):
    linear, backbone = write_lpips_files(weights_dir, "alex")
    return build_lpips("alex", linear, backbone)


def test_lpips_loads_local_files_without_any_download(weights_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    import torchvision.models._api as torchvision_api

    # torchvision binds torch.hub's loader when it is first imported: patched here, and not only in torch.hub,
    # so that a first import during this test cannot keep the refusal for the tests after it.
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", refuse)
    linear, backbone = write_lpips_files(weights_dir, "squeeze")
    model = build_lpips("squeeze", linear, backbone)
    saved = torch.load(backbone, weights_only=True)
    assert torch.equal(model.net.slice1[0].weight, saved["features.0.weight"])
    assert torch.equal(model.lins[0].model[1].weight, torch.load(linear, map_location="cpu", weights_only=True)["lin0.model.1.weight"])
    with pytest.raises(MissingWeightsError):
        build_lpips("squeeze", linear, None)


def test_lpips_rejects_a_file_that_is_not_linear_layers(weights_dir):
    _, backbone = write_lpips_files(weights_dir, "alex")
    with pytest.raises(MissingWeightsError, match="not an LPIPS"):
        build_lpips("alex", backbone, backbone)


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_lpips_matches_the_package_whole_and_masked(weights_dir, net):
    linear, backbone = write_lpips_files(weights_dir, net)
    model = build_lpips(net, linear, backbone)
    outputs, references = _images(3, seed=1), _images(3, seed=2)
    distance = LpipsDistance(model)
    ours = [distance.distance(o, r) for o, r in zip(distance.features(outputs), distance.features(references))]
    with torch.no_grad():
        expected = model(to_lpips_tensor(outputs), to_lpips_tensor(references)).flatten().tolist()
    assert ours == pytest.approx(expected, abs=1e-5)
    # masked mode = lpips' own spatial map averaged over the region's pixels.
    region = np.zeros((48, 64), dtype=bool)
    region[5:30, 10:50] = True
    spatial = build_lpips(net, linear, backbone)
    spatial.spatial = True
    with torch.no_grad():
        maps = spatial(to_lpips_tensor(outputs), to_lpips_tensor(references))
    masked = [distance.distance(o, r, region) for o, r in
              zip(distance.features(outputs), distance.features(references))]
    assert masked == pytest.approx([float(m[0][torch.from_numpy(region)].mean()) for m in maps], abs=1e-5)


def test_lpips_matches_torchmetrics_implementation(lpips_alex):
    from torchmetrics.functional.image.lpips import _LPIPS

    reference_model = _LPIPS(pretrained=False, net="alex", pnet_rand=True).eval()
    # torchmetrics keeps the (identical) input scaling constants as non-persistent buffers.
    state = {key: value for key, value in lpips_alex.state_dict().items() if not key.startswith("scaling_layer")}
    reference_model.load_state_dict(state)
    outputs, references = _images(2, seed=3), _images(2, seed=4)
    distance = LpipsDistance(lpips_alex)
    ours = [distance.distance(o, r) for o, r in zip(distance.features(outputs), distance.features(references))]
    as_unit = lambda images: torch.from_numpy(np.stack(images) / 255.0).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        expected = reference_model(as_unit(outputs), as_unit(references), normalize=True).flatten().tolist()
    assert ours == pytest.approx(expected, abs=1e-5)


def _clipscore_adapter(encoder: ClipEncoder):
    """(model, processor) in the shape torchmetrics' CLIPScore calls, around the same open_clip model."""
    from PIL import Image

    class Model(torch.nn.Module):
        config = types.SimpleNamespace()

        def get_image_features(self, pixel_values):
            return encoder.model.encode_image(pixel_values)

        def get_text_features(self, input_ids, attention_mask=None):
            return encoder.model.encode_text(input_ids)

    def processor(images=None, text=None, return_tensors="pt", padding=True):
        if images is not None:
            pil = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]
            return {"pixel_values": torch.stack([encoder.preprocess(p) for p in pil])}
        tokens = encoder.tokenizer(text)
        return {"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}

    return Model(), processor


def test_clip_t_and_clip_i_match_torchmetrics_clipscore(clip_encoder):
    from torchmetrics.multimodal import CLIPScore

    images = _images(3, seed=5)
    texts = ["a dog", "a red chair", "a bottle"]
    image_features = clip_encoder.encode_images(images)
    text_features = clip_encoder.encode_texts(texts)
    model, processor = _clipscore_adapter(clip_encoder)
    metric = CLIPScore(model_name_or_path=lambda: (model, processor))
    for image, text, image_feature, text_feature in zip(images, texts, image_features, text_features):
        metric.reset()
        with torch.no_grad():
            expected = float(metric(torch.from_numpy(image).permute(2, 0, 1), text))
        assert clip_t(image_feature, text_feature) == pytest.approx(expected, abs=1e-4 * 100)
        # CLIPScore reports in float32 on a 0..100 scale: agreement to 1e-5 on the cosine.
        assert clip_t(image_feature, text_feature) / 100 == pytest.approx(expected / 100, abs=1e-5)
    metric.reset()
    with torch.no_grad():
        expected_i = float(metric(torch.from_numpy(images[0]).permute(2, 0, 1)[None],
                                  torch.from_numpy(images[1]).permute(2, 0, 1)[None]))
    assert cosine(image_features[0], image_features[1]) == pytest.approx(max(expected_i, 0) / 100, abs=1e-5)


def test_clip_t_is_clamped_at_zero():
    assert clip_t(np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == 0.0
    assert clip_t(np.array([1.0, 0.0]), np.array([0.6, 0.8])) == pytest.approx(60.0)


def test_clip_features_do_not_depend_on_batch_size_or_order(clip_encoder):
    images = _images(4, seed=6)
    together = clip_encoder.encode_images(images)
    one_by_one = np.concatenate([clip_encoder.encode_images([image]) for image in images])
    reversed_order = clip_encoder.encode_images(images[::-1])[::-1]
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(together, reversed_order, atol=1e-6)


def test_load_open_clip_refuses_without_weights():
    with pytest.raises(MissingWeightsError):
        load_open_clip("ViT-L-14", None)


def test_dinov2_preprocessing_is_the_folders_transformers_processor(weights_dir):
    from transformers import AutoImageProcessor

    from fsmi_bench.metrics.clip_metric import pil_backend_processor
    from fsmi_bench.metrics.dino_metric import load_dinov2_processor

    folder = write_tiny_dinov2(weights_dir)
    encoder = DinoEncoder(load_dinov2(folder), load_dinov2_processor(folder))
    images = _images(2, seed=7) + _images(1, height=70, width=40, seed=8) + _images(1, height=3, width=90, seed=9)
    reference = pil_backend_processor(AutoImageProcessor, folder)
    expected = torch.cat([reference(images=image, return_tensors="pt", input_data_format="channels_last")[
        "pixel_values"] for image in images])
    ours = encoder.pixel_values(images)
    assert ours.shape == (4, 3, 224, 224)
    assert float((ours - expected).abs().max()) <= 1e-6
    with torch.no_grad():
        features = torch.nn.functional.normalize(encoder.model(pixel_values=expected).pooler_output.double(), dim=-1)
    np.testing.assert_allclose(encoder.encode_images(images), features.numpy(), atol=1e-6)
    # A folder saved from the model alone gets facebook/dinov2's published preprocessing: the same pixels.
    bare = write_tiny_dinov2(weights_dir, preprocessor_config=False)
    assert not (bare / "preprocessor_config.json").exists()
    bare_encoder = DinoEncoder(load_dinov2(bare), load_dinov2_processor(bare))
    assert float((bare_encoder.pixel_values(images) - ours).abs().max()) == 0
    one_by_one = np.concatenate([encoder.encode_images([image]) for image in images])
    np.testing.assert_allclose(encoder.encode_images(images), one_by_one, atol=1e-6)


@pytest.fixture(scope="module")
def hf_clip_folder(weights_dir):
    return write_tiny_hf_clip(weights_dir)


def test_hf_clip_matches_torchmetrics_clipscore_on_the_folder(hf_clip_folder):
    """CLIP-T and CLIP-I of the Hugging Face format = torchmetrics' CLIPScore given the same folder."""
    from torchmetrics.multimodal import CLIPScore

    from tests.support.metric_models import transformers4_clip

    encoder = HfClipEncoder(*load_hf_clip(hf_clip_folder))
    images = _images(2, seed=5) + _images(1, height=3, width=40, seed=6) + _images(1, height=1, width=1, seed=7)
    texts = ["a dog", "a red chair", "teddy bear", "cup"]
    image_features, text_features = encoder.encode_images(images), encoder.encode_texts(texts)
    metric = CLIPScore(model_name_or_path=lambda: transformers4_clip(hf_clip_folder))
    for image, text, image_feature, text_feature in zip(images, texts, image_features, text_features):
        with torch.no_grad():
            expected = float(metric(torch.from_numpy(image).permute(2, 0, 1), text))
        assert clip_t(image_feature, text_feature) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    with torch.no_grad():
        expected_i = float(metric(torch.from_numpy(images[0]).permute(2, 0, 1)[None],
                                  torch.from_numpy(images[1]).permute(2, 0, 1)[None]))
    assert 100 * cosine(image_features[0], image_features[1]) == pytest.approx(max(expected_i, 0), rel=1e-6, abs=1e-6)
    # Batches and their order change nothing.
    one_by_one = np.concatenate([encoder.encode_images([image]) for image in images])
    np.testing.assert_allclose(image_features, one_by_one, atol=1e-6)
    np.testing.assert_allclose(encoder.encode_texts(texts[::-1])[::-1], text_features, atol=1e-6)


def test_hf_clip_processing_is_that_of_transformers_4_28_1_which_smartedit_pins(hf_clip_folder):
    """Pixels and token ids from transformers 4.28.1 (SmartEdit's requirements.txt), recorded in
    tests/metrics/data by make_transformers_4_28_1_fixture.py, equal fsmi's processing here."""
    import io
    from pathlib import Path

    from PIL import Image

    _, processor = load_hf_clip(hf_clip_folder)
    recorded = np.load(Path(__file__).parent / "data" / "clip_processing_transformers_4_28_1.npz")
    for index in range(int(recorded["image_count"])):
        image = np.array(Image.open(io.BytesIO(recorded[f"png_{index}"].tobytes())))
        pixels = processor(images=[torch.from_numpy(image).permute(2, 0, 1)], return_tensors="pt")["pixel_values"]
        np.testing.assert_array_equal(pixels.numpy()[0, :, ::7, ::7], recorded[f"pixels_{index}"])
    for index, text in enumerate(recorded["texts"]):
        ids = processor(text=[str(text)], return_tensors="pt", padding=True)["input_ids"].numpy()[0]
        np.testing.assert_array_equal(ids, recorded[f"ids_{index}"])


def test_load_hf_clip_refuses_a_folder_without_weights(tmp_path):
    with pytest.raises(OSError):
        load_hf_clip(tmp_path)
