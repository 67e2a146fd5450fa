"""PSNR and SSIM between an output and its reference, on images as floats in [0, 1].

Both follow scikit-image (``skimage.metrics``); the ``masked`` mode is this module's own, written
so that only the region's pixels count (no zero-filled pixels inflate the score).
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


def psnr(output: np.ndarray, reference: np.ndarray, keep: np.ndarray, mode: str) -> float:
    """PSNR (dB, data_range 1) of RGB uint8 images on region ``keep`` under region ``mode``; NaN if empty."""
    view = region_view(output, reference, keep, mode)
    return math.nan if view is None else psnr_masked(*view)


def ssim(output: np.ndarray, reference: np.ndarray, keep: np.ndarray, mode: str) -> float:
    """SSIM (scikit-image, see ``ssim_masked``) on region ``keep`` under region ``mode``; NaN if empty."""
    view = region_view(output, reference, keep, mode)
    return math.nan if view is None else ssim_masked(*view)
