"""PSNR and SSIM against scikit-image and torchmetrics, and the region modes."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fsmi_bench.metrics import pixel
from fsmi_bench.metrics.regions import (
    bounding_box,
    metric_region,
    region_view,
    resize_region,
    smartedit_box,
    zero_fill,
)


def _images(seed=0, height=40, width=56):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, (height, width, 3))
    output = np.clip(reference.astype(int) + noise, 0, 255).astype(np.uint8)
    region = np.zeros((height, width), dtype=bool)
    region[10:25, 12:40] = True
    region[25:30, 20:24] = True
    return output, reference, region


def test_psnr_whole_matches_scikit_image_and_torchmetrics():
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    output, reference, region = _images()
    ours = pixel.psnr(output, reference, region, "whole")
    expected = peak_signal_noise_ratio(reference / 255.0, output / 255.0, data_range=1.0)
    torch_value = tm_psnr(torch.from_numpy(output / 255.0), torch.from_numpy(reference / 255.0), data_range=1.0)
    assert ours == pytest.approx(expected, abs=1e-5)
    assert ours == pytest.approx(float(torch_value), abs=1e-5)


def test_psnr_region_modes_match_their_definitions():
    output, reference, region = _images(1)
    box = bounding_box(region)
    crop = (slice(box.top, box.bottom), slice(box.left, box.right))
    bbox = pixel.psnr(output, reference, region, "bbox_crop")
    assert bbox == pytest.approx(peak_signal_noise_ratio(reference[crop] / 255.0, output[crop] / 255.0,
                                                         data_range=1.0), abs=1e-5)
    zero = pixel.psnr(output, reference, region, "zero_fill")
    assert zero == pytest.approx(peak_signal_noise_ratio(zero_fill(reference, region) / 255.0,
                                                         zero_fill(output, region) / 255.0, data_range=1.0), abs=1e-5)
    masked = pixel.psnr(output, reference, region, "masked")
    mse = np.mean(((output[region] / 255.0) - (reference[region] / 255.0)) ** 2)
    assert masked == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)
    # Zero-filled pixels agree perfectly, which is why zero_fill inflates PSNR.
    assert zero > masked


def test_masked_psnr_ignores_pixels_outside_the_region():
    output, reference, region = _images(2)
    changed = output.copy()
    changed[~region] = 255 - changed[~region]
    assert pixel.psnr(changed, reference, region, "masked") == pixel.psnr(output, reference, region, "masked")
    assert pixel.psnr(reference, reference, region, "masked") == pixel.PSNR_MAX_DB  # identical: capped


def test_psnr_is_capped_but_not_below_the_cap():
    reference = np.zeros((16, 16, 3), np.uint8)
    nearly = reference.copy()
    nearly[0, 0, 0] = 1  # one unit off in one value: about 75 dB, under the cap
    value = pixel.psnr(nearly, reference, np.ones((16, 16), bool), "whole")
    assert value == pytest.approx(10 * math.log10(1 / ((1 / 255) ** 2 / (16 * 16 * 3))), abs=1e-9)
    assert value < pixel.PSNR_MAX_DB


def test_ssim_matches_scikit_image_and_torchmetrics():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    output, reference, region = _images(3)
    ours = pixel.ssim(output, reference, region, "whole")
    expected = structural_similarity(reference / 255.0, output / 255.0, data_range=1.0, channel_axis=2)
    assert ours == pytest.approx(expected, abs=1e-5)
    # torchmetrics' uniform 7x7 window SSIM uses the population covariance and averages its map over
    # the padded border too; its map's interior, with the population covariance, must agree with ours,
    # for the whole image and for the masked mode alike.
    as_tensor = lambda image: torch.from_numpy(image / 255.0).permute(2, 0, 1)[None]
    _, full_map = tm_ssim(as_tensor(output), as_tensor(reference), gaussian_kernel=False, kernel_size=7,
                          data_range=1.0, return_full_image=True)
    ssim_map = full_map[0].permute(1, 2, 0).numpy()
    inner = region.copy()
    inner[:3] = inner[-3:] = False
    inner[:, :3] = inner[:, -3:] = False
    population = pixel.ssim_masked(output, reference, None, use_sample_covariance=False)
    assert population == pytest.approx(float(ssim_map[3:-3, 3:-3].mean()), abs=1e-5)
    masked = pixel.ssim_masked(output, reference, region, use_sample_covariance=False)
    assert masked == pytest.approx(float(ssim_map[inner].mean()), abs=1e-5)


def test_masked_ssim_is_the_map_mean_over_region_pixels():
    output, reference, region = _images(4)
    everything = np.ones_like(region)
    assert pixel.ssim(output, reference, everything, "masked") == pytest.approx(
        pixel.ssim(output, reference, region, "whole"), abs=1e-9)
    _, ssim_map = structural_similarity(reference / 255.0, output / 255.0, data_range=1.0, channel_axis=2,
                                        full=True)
    inner = region.copy()
    inner[:3] = inner[-3:] = False
    inner[:, :3] = inner[:, -3:] = False
    assert pixel.ssim(output, reference, region, "masked") == pytest.approx(ssim_map[inner].mean(), abs=1e-9)


def test_empty_region_and_tiny_crop_give_nan():
    output, reference, region = _images(5)
    empty = np.zeros_like(region)
    assert math.isnan(pixel.psnr(output, reference, empty, "masked"))
    assert region_view(output, reference, empty, "bbox_crop") is None
    tiny = np.zeros_like(region)
    tiny[3:6, 3:6] = True
    assert math.isnan(pixel.ssim(output, reference, tiny, "bbox_crop"))


def test_region_helpers():
    region = np.zeros((10, 12), dtype=bool)
    region[2:5, 3:9] = True
    assert metric_region(region, "bg").sum() == 120 - 18
    assert metric_region(region, "whole").all()
    box = bounding_box(region)
    assert (box.top, box.left, box.bottom, box.right) == (2, 3, 5, 9)
    resized = resize_region(region, 24)
    assert resized.dtype == bool and resized.shape == (24, 24) and resized.any()


def test_paper_ssim_is_torchmetrics_default_ssim_in_float32():
    """``ssim_torchmetrics`` = torchmetrics' StructuralSimilarityIndexMeasure(data_range=1.0) on float32
    images, as SmartEdit's script calls it, to the last bit; square, non-square, smooth and tiny images."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    rng = np.random.default_rng(11)
    rows, columns = np.mgrid[0:64, 0:90]
    smooth = np.stack([rows * 3, columns * 2, rows + columns], axis=-1).astype(np.uint8)
    pairs = [_images(6)[:2], _images(7, height=256, width=256)[:2], _images(8, height=6, width=9)[:2],
             (smooth, np.clip(smooth.astype(int) + rng.integers(-2, 3, smooth.shape), 0, 255).astype(np.uint8))]
    as_tensor = lambda image: torch.tensor(image.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
    for output, reference in pairs:
        with _torch_threads(pixel.SUMMED_AS_THREADS):  # torch's mean moves in its last bit with the threads
            expected = float(StructuralSimilarityIndexMeasure(data_range=1.0)(as_tensor(reference),
                                                                              as_tensor(output)))
        assert pixel.ssim_torchmetrics(output, reference) == expected
        assert pixel.ssim(output, reference, np.ones(output.shape[:2], bool), "whole", "torchmetrics") == expected
    assert math.isnan(pixel.ssim_torchmetrics(*_images(9, height=5, width=40)[:2]))
    with pytest.raises(ValueError, match="masked"):
        pixel.ssim(*_images(9)[:3], "masked", "torchmetrics")


def test_smartedit_box_leaves_out_the_last_row_and_column():
    region = np.zeros((10, 12), dtype=bool)
    region[2:5, 3:9] = True
    region[9, 11] = True  # touches the bottom-right corner
    box = smartedit_box(region)
    assert (box.top, box.left, box.bottom, box.right) == (2, 3, 9, 11)  # PIL crop((3, 2, 11, 9))
    from PIL import Image

    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    pil_crop = np.asarray(Image.fromarray(image).crop((3, 2, 11, 9)))
    output, _, pixels = region_view(image, image, region, "smartedit_crop")
    np.testing.assert_array_equal(output, pil_crop)
    assert pixels is None
    thin = np.zeros((10, 12), dtype=bool)
    thin[4, 2:9] = True  # one pixel tall: SmartEdit's crop is empty, the metric NaN
    assert region_view(image, image, thin, "smartedit_crop") is None
    assert smartedit_box(np.zeros((3, 3), dtype=bool)) is None


class _torch_threads:
    def __init__(self, count):
        self.count, self.previous = count, torch.get_num_threads()

    def __enter__(self):
        torch.set_num_threads(self.count)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def test_torch_ssim_is_the_same_on_any_thread_count_in_batches_and_in_threads():
    """The value does not move with torch's thread count (torchmetrics' own does, in its last bit), is
    the same for a pair alone or in a batch, and several threads may compute it at once."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [_images(seed, height=200, width=190)[:2] for seed in range(4)]
    pairs += [_images(4, height=300, width=200)[:2], _images(5, height=5, width=9)[:2], _images(6)[:2]]
    alone = [pixel.ssim_torchmetrics(output, reference) for output, reference in pairs]
    for threads in (1, 3):
        with _torch_threads(threads):
            assert [pixel.ssim_torchmetrics(output, reference) for output, reference in pairs] == alone
            assert torch.get_num_threads() == threads  # restored for the caller
    assert pixel.ssim_torchmetrics_many(pairs) == alone
    assert math.isnan(alone[5]) and not any(math.isnan(value) for value in alone[:5] + alone[6:])
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda pair: pixel.ssim_torchmetrics(*pair), pairs * 3)) == alone * 3
