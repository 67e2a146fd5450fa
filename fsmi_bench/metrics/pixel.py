"""PSNR and SSIM between an output and its reference, on images as floats in [0, 1].

PSNR and the scikit-image SSIM (``strict``) follow ``skimage.metrics`` in float64; the ``masked`` mode is
this module's own, written so that only the region's pixels count (no zero-filled pixels inflate the
score). ``ssim_torchmetrics`` (``paper``) is the SSIM of SmartEdit's evaluator: torchmetrics'
``StructuralSimilarityIndexMeasure(data_range=1.0)`` with its defaults, in float32 as there.
"""

from __future__ import annotations

import math

import numpy as np

from fsmi_bench.metrics.regions import region_view

# scikit-image's defaults, stated so that the results' metric spec can name them.
SSIM_WIN_SIZE = 7
# Identical pixels have infinite PSNR; a cap keeps means over cases finite and comparable
# (methods that leave the background untouched would otherwise average to +inf).
PSNR_MAX_DB = 100.0


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float64 in [0, 1]."""
    return image.astype(np.float64) / 255.0


def psnr_masked(output: np.ndarray, reference: np.ndarray, pixels: np.ndarray | None) -> float:
    """PSNR in dB with data_range 1 over ``pixels`` (all pixels if None), capped at PSNR_MAX_DB
    (which identical pixels get).

    MSE = mean over the selected pixels and the 3 channels of (output - reference)^2, values in [0, 1].
    """
    difference = to_unit_float(output) - to_unit_float(reference)
    squared = difference ** 2
    mse = float(squared.mean()) if pixels is None else float(squared[pixels].mean())
    return PSNR_MAX_DB if mse == 0.0 else min(PSNR_MAX_DB, 10.0 * math.log10(1.0 / mse))


def ssim_masked(output: np.ndarray, reference: np.ndarray, pixels: np.ndarray | None,
                use_sample_covariance: bool = True) -> float:
    """SSIM of RGB images as floats in [0, 1] with scikit-image's parameters.

    ``structural_similarity(reference, output, data_range=1.0, channel_axis=2, win_size=7,
    gaussian_weights=False, use_sample_covariance=True, K1=0.01, K2=0.03)``: the mean of the SSIM
    map over all channels. With ``pixels``, the mean of the full SSIM map over the selected pixels
    (and channels) instead, leaving out the 3-pixel border as scikit-image does. Images smaller
    than 7 pixels on a side give NaN (SSIM is undefined). ``use_sample_covariance=False`` gives the
    population covariance of torchmetrics' uniform-window SSIM (used to test against it).
    """
    from skimage.metrics import structural_similarity

    if min(output.shape[:2]) < SSIM_WIN_SIZE:
        return math.nan
    score, ssim_map = structural_similarity(
        to_unit_float(reference), to_unit_float(output), data_range=1.0, channel_axis=2,
        win_size=SSIM_WIN_SIZE, gaussian_weights=False, use_sample_covariance=use_sample_covariance, full=True)
    if pixels is None:
        return float(score)
    # scikit-image leaves out a border of (win_size - 1) // 2 pixels, where the window is padded;
    # the same pixels are left out here, so a region covering everything gives scikit-image's value.
    pad = (SSIM_WIN_SIZE - 1) // 2
    interior = np.zeros_like(pixels)
    interior[pad:-pad, pad:-pad] = True
    selected = pixels & interior
    if not selected.any():
        return math.nan
    return float(ssim_map[selected].mean())


def ssim_torchmetrics(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of two RGB uint8 images as SmartEdit's script computes it: both as float32 in [0, 1], then
    torchmetrics' ``StructuralSimilarityIndexMeasure(data_range=1.0)`` (version 1.4.2 or later).

    That is: an 11 x 11 Gaussian window (sigma 1.5, normalised in float32), each image padded by 5
    pixels with PyTorch's ``reflect`` mode, local means and (co)variances by a grouped convolution,
    variances clamped at 0, C1 = (0.01)^2, C2 = (0.03)^2, and the mean of the whole map over the 3
    channels. torchmetrics 1.4.1 and older averaged only the map's interior (5 pixels in from each side).
    The arithmetic stays in float32, in the same order: in float64 the result moves by up to 5e-6 on
    smooth images, where a local variance is a small difference of two large float32 numbers.
    The map's mean is summed as torch sums it on two threads (``_mean_as_two_threads``), whatever the
    machine, so the value does not move in its last bit with the number of cores.
    Images under 6 pixels on a side (reflect padding needs 6) give NaN.
    """
    return ssim_torchmetrics_many([(output, reference)])[0]


# torch sums a tensor of at least this many elements in one part per thread (ATen's GRAIN_SIZE).
TORCH_GRAIN_SIZE = 32768
# The thread count whose summation order the torch SSIM's mean follows: the 2-core machines its
# committed values come from.
SUMMED_AS_THREADS = 2


def ssim_torchmetrics_many(pairs) -> list[float]:
    """``ssim_torchmetrics`` of each (output, reference) pair, the pairs of one size in one batch.

    Each value is the one ``ssim_torchmetrics`` gives for its pair alone (the convolution treats the
    batch's images apart, and each map is reduced on its own). Thread-safe, and steady under load:
    torch runs with one thread inside (``_one_torch_thread``), so callers share the cores among pairs
    (``fsmi_bench.workers``) instead of torch's threads waiting on each other on busy cores.
    """
    import torch

    values: list[float] = [math.nan] * len(pairs)
    by_shape: dict[tuple, list[int]] = {}
    for index, (output, reference) in enumerate(pairs):
        if output.shape != reference.shape:
            raise ValueError(f"SSIM of images of different shapes: {output.shape} and {reference.shape}")
        if min(output.shape[:2]) >= 6:
            by_shape.setdefault(output.shape, []).append(index)
    with _one_torch_thread(torch):
        for indexes in by_shape.values():
            maps = _ssim_maps(torch, [pairs[i][0] for i in indexes], [pairs[i][1] for i in indexes])
            for index, ssim_map in zip(indexes, maps):
                values[index] = _mean_as_two_threads(torch, ssim_map.reshape(-1))
    return values


def _ssim_maps(torch, outputs: list[np.ndarray], references: list[np.ndarray]):
    """torchmetrics' SSIM maps, shape (N, 3, H, W) float32, of N same-size image pairs."""
    from torch.nn import functional

    kernel_size, sigma, pad = 11, 1.5, 5
    # torchmetrics' _gaussian and _gaussian_kernel_2d, in float32.
    offsets = torch.arange((1 - kernel_size) / 2, (1 + kernel_size) / 2, step=1, dtype=torch.float32)
    gauss = torch.exp(-torch.pow(offsets / sigma, 2) / 2)
    gauss = (gauss / gauss.sum()).unsqueeze(dim=0)
    kernel = torch.matmul(gauss.t(), gauss).expand(3, 1, kernel_size, kernel_size)

    def as_tensor(images):
        return torch.from_numpy(np.stack(images).astype(np.float32) / 255).permute(0, 3, 1, 2)

    count = len(outputs)
    preds = functional.pad(as_tensor(references), (pad, pad, pad, pad), mode="reflect")
    target = functional.pad(as_tensor(outputs), (pad, pad, pad, pad), mode="reflect")
    stacked = torch.cat((preds, target, preds * preds, target * target, preds * target))
    means = functional.conv2d(stacked, kernel, groups=3).split(count)
    mu_pred_sq, mu_target_sq = means[0].pow(2), means[1].pow(2)
    mu_pred_target = means[0] * means[1]
    sigma_pred_sq = torch.clamp(means[2] - mu_pred_sq, min=0.0)
    sigma_target_sq = torch.clamp(means[3] - mu_target_sq, min=0.0)
    sigma_pred_target = means[4] - mu_pred_target
    c1, c2 = pow(0.01 * 1.0, 2), pow(0.03 * 1.0, 2)
    upper = 2 * sigma_pred_target + c2
    lower = (sigma_pred_sq + sigma_target_sq) + c2
    return ((2 * mu_pred_target + c1) * upper) / ((mu_pred_sq + mu_target_sq + c1) * lower)


def _mean_as_two_threads(torch, values) -> float:
    """The float32 mean of a 1-D tensor summed as ``tensor.mean()`` sums it on ``SUMMED_AS_THREADS``
    threads: torch's parallel reduction splits the elements into one contiguous part per thread
    (``at::parallel_for`` with ``GRAIN_SIZE``), sums each part serially, adds the parts in order, then
    divides. Run under ``_one_torch_thread``, so each part's own sum is serial."""
    count = values.numel()
    parts = 1 if count < TORCH_GRAIN_SIZE else min(SUMMED_AS_THREADS, -(-count // TORCH_GRAIN_SIZE))
    size = -(-count // parts)
    total = torch.zeros((), dtype=torch.float32)
    for start in range(0, count, size):
        total = total + values[start:start + size].sum()
    return float(total / count)


class _one_torch_thread:
    """torch with one intra-op thread in the calling thread for the block (OpenMP's thread count is
    kept per calling thread), then as before."""

    def __init__(self, torch):
        self.torch = torch
        self.previous = 1

    def __enter__(self):
        self.previous = self.torch.get_num_threads()
        if self.previous != 1:
            self.torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.previous != 1:
            self.torch.set_num_threads(self.previous)


def psnr(output: np.ndarray, reference: np.ndarray, keep: np.ndarray, mode: str) -> float:
    """PSNR (dB, data_range 1) of RGB uint8 images on region ``keep`` under region ``mode``; NaN if empty."""
    view = region_view(output, reference, keep, mode)
    return math.nan if view is None else psnr_masked(*view)


def ssim(output: np.ndarray, reference: np.ndarray, keep: np.ndarray, mode: str,
         algorithm: str = "scikit-image") -> float:
    """SSIM on region ``keep`` under region ``mode``; NaN if empty. ``algorithm``: "scikit-image"
    (``ssim_masked``, any mode) or "torchmetrics" (``ssim_torchmetrics``, SmartEdit's; not ``masked``)."""
    view = region_view(output, reference, keep, mode)
    if view is None:
        return math.nan
    if algorithm == "torchmetrics":
        if view[2] is not None:
            raise ValueError("torchmetrics' SSIM has no masked mode")
        return ssim_torchmetrics(view[0], view[1])
    return ssim_masked(*view)
