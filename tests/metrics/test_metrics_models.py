"""LPIPS, CLIP-T/CLIP-I and DINOv2 against independent references, on tiny random real models."""

import types

import numpy as np
import pytest
import torch

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.metrics.clip_metric import ClipEncoder, clip_t, cosine, load_open_clip
from fsmi_bench.metrics.dino_metric import DinoEncoder, load_dinov2
from fsmi_bench.metrics.lpips_metric import LpipsDistance, build_lpips, to_lpips_tensor
from tests.support.metric_models import TINY_CLIP, write_lpips_files, write_tiny_clip, write_tiny_dinov2


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

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
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


def test_dinov2_matches_transformers_processor_and_model(weights_dir):
    from transformers import BitImageProcessor

    folder = write_tiny_dinov2(weights_dir)
    encoder = DinoEncoder(load_dinov2(folder))
    # The preprocessing of facebook/dinov2-* (its preprocessor_config.json), built offline.
    processor = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                  resample=3, do_center_crop=True, do_convert_rgb=True,
                                  image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    images = _images(2, seed=7) + _images(1, height=70, width=40, seed=8)
    ours = encoder.encode_images(images)
    expected = []
    with torch.no_grad():
        for image in images:
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            expected.append(encoder.model(pixel_values=pixels).pooler_output[0])
    expected = torch.nn.functional.normalize(torch.stack(expected).double(), dim=-1).numpy()
    for first in range(3):
        for second in range(3):
            assert cosine(ours[first], ours[second]) == pytest.approx(
                float(np.dot(expected[first], expected[second])), abs=1e-5)
    one_by_one = np.concatenate([encoder.encode_images([image]) for image in images])
    np.testing.assert_allclose(ours, one_by_one, atol=1e-6)
