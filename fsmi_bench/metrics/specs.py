"""Metric specifications and the two protocol presets.

A ``MetricSpec`` fixes everything that determines a number: which images are compared, which pixels
count (region mode), the resolution, the model and the scale. Its JSON (plus the sha256 of the
weights actually used) is stored in every results row, so a table always says how it was made.

Region modes (see ``regions.py``):
- ``bbox_crop``: crop output and reference to the bounding box of the region (the paper's rule).
- ``masked``: only pixels inside the region count; nothing is zero-filled.
- ``zero_fill``: pixels outside the region are set to 0 in both images, then the whole image is
  compared (the convention of SmartEdit's and PIE-Bench's evaluators, kept for parity, labelled so).
- ``whole``: the whole image (``whole_*`` metrics).

Embedding models (CLIP, DINOv2) need a rectangular input, so ``masked`` is not defined for them;
both protocols encode the region's bounding-box crop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

SINGLE_METRICS = ("bg_psnr", "bg_ssim", "bg_lpips", "fg_clip_t")
MULTI_METRICS = ("fg_psnr", "fg_clip_t", "fg_clip_i", "fg_dinov2",
                 "whole_psnr", "whole_lpips", "whole_clip_i", "whole_dinov2")
ALL_METRICS = tuple(dict.fromkeys(SINGLE_METRICS + MULTI_METRICS))
WEIGHTLESS_METRICS = ("bg_psnr", "bg_ssim", "fg_psnr", "whole_psnr")
REGION_MODES = ("bbox_crop", "masked", "zero_fill", "whole")

# Default models. CLIP follows open_clip's names; DINOv2 names the Hugging Face repository.
CLIP_MODEL = "ViT-L-14"
DINOV2_MODEL = "facebook/dinov2-small"


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is computed.

    name: e.g. ``bg_psnr``. region: "fg" (edit region), "bg" (its complement) or "whole".
    measure: "psnr", "ssim", "lpips", "clip_t", "clip_i" or "dinov2".
    reference: what the output is compared with: "scene" (single-image cases, the input) or "gt".
    region_mode: one of ``REGION_MODES``. size: side of the square the images are resized to
    before anything else (``None`` = native resolution). model: model name (``None`` for pixel
    measures). value_range: what a pixel value means at the input of the measure. scale, clamp:
    how the raw value is turned into the reported one.
    """

    name: str
    region: str
    measure: str
    region_mode: str
    size: int | None
    model: str | None
    value_range: str
    scale: float
    clamp: str
    higher_is_better: bool
    resize_rule: str = "none"
    params: tuple[tuple[str, object], ...] = ()

    def to_json(self, weights_sha256: str = "none") -> str:
        """The spec as sorted-key JSON, with the sha256 of the weights used ("none" if weightless)."""
        data = asdict(self)
        data["params"] = dict(self.params)
        data["weights_sha256"] = weights_sha256
        return json.dumps(data, sort_keys=True)

    @property
    def needs_weights(self) -> bool:
        return self.model is not None

    def reference_is_scene(self) -> bool:
        """True when the output is compared with the input scene (``bg_*``), else with the GT."""
        return self.region == "bg"


RESIZE_256 = "images: PIL bicubic to 256x256; edit region: nearest to 256x256"
SSIM_PARAMS = (("win_size", 7), ("gaussian_weights", False), ("use_sample_covariance", True),
               ("K1", 0.01), ("K2", 0.03), ("data_range", 1.0), ("channel_axis", 2))
PSNR_RANGE = "float RGB in [0, 1], data_range=1"


def _reference(name: str) -> str:
    return "scene" if name.startswith("bg_") else "gt"


def _pixel(name: str, measure: str, mode: str, size: int | None) -> MetricSpec:
    region = name.split("_", 1)[0]
    return MetricSpec(
        name=name, region=region, measure=measure, region_mode=mode, size=size, model=None,
        value_range=PSNR_RANGE, scale=1.0, clamp="max 100 dB" if measure == "psnr" else "none",
        higher_is_better=True,
        resize_rule=RESIZE_256 if size else "none",
        params=(("unit", "dB"),) if measure == "psnr" else SSIM_PARAMS)


def _lpips(name: str, net: str, mode: str, size: int | None) -> MetricSpec:
    return MetricSpec(
        name=name, region=name.split("_", 1)[0], measure="lpips", region_mode=mode, size=size,
        model=f"lpips-{net}-v0.1", value_range="RGB in [0, 1], mapped to [-1, 1] for the network",
        scale=1.0, clamp="none", higher_is_better=False, resize_rule=RESIZE_256 if size else "none",
        params=(("net", net),))


def _embedding(name: str, measure: str, size: int | None) -> MetricSpec:
    region = name.split("_", 1)[0]
    mode = "bbox_crop" if region == "fg" else "whole"
    if measure == "dinov2":
        model, params = DINOV2_MODEL, (("feature", "CLS token after the final layer norm (pooler_output)"),
                                       ("preprocess", "shortest side 256 bicubic, center crop 224, ImageNet mean/std"))
    else:
        model, params = CLIP_MODEL, (("preprocess", "open_clip's eval transform of the model"),)
    is_text = measure == "clip_t"
    return MetricSpec(
        name=name, region=region, measure=measure, region_mode=mode, size=size, model=model,
        value_range="uint8 RGB into the model's own preprocessing",
        scale=100.0 if is_text else 1.0, clamp="max(0, .)" if is_text else "none",
        higher_is_better=True, resize_rule=RESIZE_256 if size else "none",
        params=params + ((("similarity", "cosine of L2-normalised features"),)))


def _preset(size: int | None, bg_mode: str, fg_pixel_mode: str, lpips_net: str) -> dict[str, MetricSpec]:
    specs = {
        "bg_psnr": _pixel("bg_psnr", "psnr", bg_mode, size),
        "bg_ssim": _pixel("bg_ssim", "ssim", bg_mode, size),
        "bg_lpips": _lpips("bg_lpips", lpips_net, bg_mode, size),
        "fg_psnr": _pixel("fg_psnr", "psnr", fg_pixel_mode, size),
        "whole_psnr": _pixel("whole_psnr", "psnr", "whole", size),
        "whole_lpips": _lpips("whole_lpips", lpips_net, "whole", size),
    }
    for name in ("fg_clip_t", "fg_clip_i", "whole_clip_i"):
        specs[name] = _embedding(name, name.split("_", 1)[1], size)
    for name in ("fg_dinov2", "whole_dinov2"):
        specs[name] = _embedding(name, "dinov2", size)
    return specs


# `paper`: SmartEdit's conventions, which the paper follows: 256x256, zero-filled background for the
# single-image background metrics, SqueezeNet LPIPS, region crops for the foreground.
# `strict`: native resolution; only region pixels count (no zero-filling); AlexNet LPIPS.
PROTOCOLS: dict[str, dict[str, MetricSpec]] = {
    "paper": _preset(256, "zero_fill", "bbox_crop", "squeeze"),
    "strict": _preset(None, "masked", "masked", "alex"),
}


def metric_spec(protocol: str, name: str) -> MetricSpec:
    """The spec of metric ``name`` under ``protocol``; a ``BadInputError`` names the valid choices."""
    from fsmi_bench.errors import BadInputError

    if protocol not in PROTOCOLS:
        raise BadInputError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    if name not in PROTOCOLS[protocol]:
        raise BadInputError(f"unknown metric {name!r} (known: {', '.join(ALL_METRICS)})")
    return PROTOCOLS[protocol][name]


def metrics_for_kind(kind: str) -> tuple[str, ...]:
    """The metric set of a case kind: "single" or "multi"."""
    return SINGLE_METRICS if kind == "single" else MULTI_METRICS
