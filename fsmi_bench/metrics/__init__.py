"""FSMI-Edit metrics: pixel (PSNR, SSIM), perceptual (LPIPS) and embedding (CLIP, DINOv2) measures.

Importing this package is cheap; each measure's module imports torch or scikit-image itself.
Names follow ``<region>_<measure>``: ``fg_*`` on the edit region, ``bg_*`` outside it, ``whole_*`` on
the whole image. ``specs.PROTOCOLS`` fixes how each is computed; ``fsmi_bench.scoring.scorer.Scorer`` computes them in bulk.
"""
