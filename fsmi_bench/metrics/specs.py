"""Metric specifications and the two protocol presets.

A ``MetricSpec`` fixes everything that determines a number: which images are compared, which pixels
count (region mode), the resolution, the model and the scale. Its JSON (plus the sha256 of the
weights actually used) is stored in every results row, so a table always says how it was made.

Region modes (see ``regions.py``):
- ``bbox_crop``: crop output and reference to the tight bounding box of the region.
- ``smartedit_crop``: the crop SmartEdit's evaluator takes, PIL ``crop((min x, min y, max x, max y))``,
  which leaves out the box's last row and column.
- ``masked``: only pixels inside the region count; nothing is zero-filled.
- ``zero_fill``: pixels outside the region are set to 0 in both images, then the whole image is
  compared (the convention of SmartEdit's and PIE-Bench's evaluators, kept for parity, labelled so).
- ``whole``: the whole image (``whole_*`` metrics).

Embedding models (CLIP, DINOv2) need a rectangular input, so ``masked`` is not defined for them.

``paper`` is SmartEdit's ``test/metrics_evaluation.py`` (TencentARC/SmartEdit a65f126) for what that
script measures (the single-image metrics); every rule it does not fix is an ``FsmiChoice``, recorded
in the spec and printed under every table with its reason. ``strict`` is fsmi's own protocol.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

SINGLE_METRICS = ("bg_psnr", "bg_ssim", "bg_lpips", "fg_clip_t")
MULTI_METRICS = ("fg_psnr", "fg_clip_t", "fg_clip_i", "fg_dinov2",
                 "whole_psnr", "whole_lpips", "whole_clip_i", "whole_dinov2")
ALL_METRICS = tuple(dict.fromkeys(SINGLE_METRICS + MULTI_METRICS))
WEIGHTLESS_METRICS = ("bg_psnr", "bg_ssim", "fg_psnr", "whole_psnr")
REGION_MODES = ("bbox_crop", "smartedit_crop", "masked", "zero_fill", "whole")

# Embedding models. CLIP ViT-L/14 (OpenAI) comes in two formats holding the same weights: the Hugging
# Face folder that SmartEdit's evaluator loads (torchmetrics' CLIPScore) and open_clip's checkpoint.
# DINOv2 names the Hugging Face repository of its folder.
CLIP_MODEL = "openai/clip-vit-large-patch14"
OPEN_CLIP_MODEL = "ViT-L-14"
DINOV2_MODEL = "facebook/dinov2-small"
MODEL_PREPROCESS = {
    CLIP_MODEL: ("transformers CLIPModel with the folder's CLIPProcessor, its image processor on the PIL backend "
                 "(the processing of transformers 4.28.1, which SmartEdit pins); each image a uint8 CHW tensor, "
                 "captions padded and cut at 77 tokens, as torchmetrics' CLIPScore does"),
    OPEN_CLIP_MODEL: "open_clip's eval transform and tokenizer (not SmartEdit's preprocessing)",
    DINOV2_MODEL: ("the folder's transformers image processor on the PIL backend (facebook/dinov2's "
                   "preprocessor_config.json values when the folder has none): shortest side 256 bicubic, "
                   "center crop 224, ImageNet mean/std"),
}


@dataclass(frozen=True)
class FsmiChoice:
    """A rule of a protocol that is fsmi's own: neither SmartEdit's script nor the paper fixes it.

    Each one is recorded in the metric spec and printed under every table that shows the metric.
    """

    name: str
    rule: str
    reason: str

    def text(self) -> str:
        return f"{self.rule} Why: {self.reason}"


PSNR_CAP = FsmiChoice(
    "psnr_cap", "PSNR above 100 dB is reported as 100 dB; SmartEdit's script gives inf for identical images.",
    "one untouched background would make every mean over cases infinite.")
MULTI_IMAGE_FOREGROUND = FsmiChoice(
    "multi_image_foreground",
    "On multi-image cases the foreground is SmartEdit's crop of the edit region's bounding box, cut from "
    "the output and the GT alike, at 256 x 256.",
    "the paper names the multi-image foreground metrics without saying how the foreground is cut (crop or "
    "zero-fill); SmartEdit's crop keeps fg_clip_t one metric in Tables 1 and 2.")
MULTI_IMAGE_WHOLE = FsmiChoice(
    "multi_image_whole", "Whole-image metrics compare output and GT at 256 x 256 (LPIPS: SqueezeNet).",
    "the paper does not state a size or network; these are SmartEdit's single-image settings.")
CLIP_I_MODEL = FsmiChoice(
    "clip_i_model", "CLIP-I is the cosine of the same CLIP ViT-L/14 features as CLIP-T, unscaled.",
    "the paper cites CLIP for CLIP-I without naming a model.")
DINOV2_FEATURE = FsmiChoice(
    "dinov2_model", "DINOv2 is ViT-S/14 (facebook/dinov2-small), the cosine of its CLS tokens after the final "
    "layer norm.", "the paper cites DINOv2 without naming a model size or feature.")
STRICT = FsmiChoice(
    "strict_protocol", "Protocol strict: native resolution, only region pixels count (no zero-filling), "
    "AlexNet LPIPS, scikit-image SSIM (7 x 7 uniform window, sample covariance), tight bounding-box crops.",
    "a definition that rewards no zero-filled pixel and depends on no resize.")


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is computed.

    name: e.g. ``bg_psnr``. region: "fg" (edit region), "bg" (its complement) or "whole".
    measure: "psnr", "ssim", "lpips", "clip_t", "clip_i" or "dinov2".
    reference: what the output is compared with: "scene" (single-image cases, the input) or "gt".
    region_mode: one of ``REGION_MODES``. size: side of the square the images are resized to
    before anything else (``None`` = native resolution). model: model name (``None`` for pixel
    measures); fallback_models: models accepted instead when ``model``'s weights are not on the
    machine (the one used is recorded). value_range: what a pixel value means at the input of the
    measure. scale, clamp: how the raw value is turned into the reported one. fsmi_choices: the rules
    that are fsmi's own (see ``FsmiChoice``).
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
    fallback_models: tuple[str, ...] = ()
    fsmi_choices: tuple[FsmiChoice, ...] = ()

    def to_json(self, weights_sha256: str = "none", model_used: str | None = None) -> str:
        """The spec as sorted-key JSON, with the model actually used (``model_used``, default ``model``)
        and the sha256 of its weights ("none" if weightless)."""
        data = asdict(self)
        data["params"] = dict(self.params)
        choices = {choice.name: choice.text() for choice in self.fsmi_choices}
        used = model_used or self.model
        if used is not None:
            data["model"] = used
            data["preprocess"] = MODEL_PREPROCESS.get(used, "")
            if used != self.model:
                choices["model_substitute"] = (
                    f"{used} instead of {self.model}, whose weights were not on this machine: "
                    "the same weights in another format, whose preprocessing differs. Why: the user's weights.")
        data["fsmi_choices"] = choices
        data["weights_sha256"] = weights_sha256
        return json.dumps(data, sort_keys=True)

    @property
    def needs_weights(self) -> bool:
        return self.model is not None

    @property
    def accepted_models(self) -> tuple[str, ...]:
        """``model`` then ``fallback_models``: the order in which weights are looked for."""
        return () if self.model is None else (self.model,) + self.fallback_models

    def reference_is_scene(self) -> bool:
        """True when the output is compared with the input scene (``bg_*``), else with the GT."""
        return self.region == "bg"

    def param(self, key: str, default=None):
        return dict(self.params).get(key, default)


RESIZE_256 = "images: PIL bicubic to 256x256; edit region: nearest to 256x256"
# scikit-image's structural_similarity with its defaults (strict).
SKIMAGE_SSIM_PARAMS = (("algorithm", "scikit-image"), ("win_size", 7), ("gaussian_weights", False),
                       ("use_sample_covariance", True), ("K1", 0.01), ("K2", 0.03), ("data_range", 1.0),
                       ("channel_axis", 2))
# torchmetrics' StructuralSimilarityIndexMeasure(data_range=1.0), as SmartEdit's script calls it (paper).
TORCHMETRICS_SSIM_PARAMS = (
    ("algorithm", "torchmetrics"), ("gaussian_kernel", True), ("kernel_size", 11), ("sigma", 1.5), ("k1", 0.01),
    ("k2", 0.03), ("data_range", 1.0), ("dtype", "float32"),
    ("reduction", ("mean of the whole SSIM map, its 5-pixel border computed on reflect padding "
                   "(torchmetrics >= 1.4.2; 1.4.1 and older left the border out)")))
PSNR_RANGE = "float RGB in [0, 1], data_range=1"


@dataclass(frozen=True)
class Protocol:
    """The settings that differ between protocols."""

    size: int | None
    bg_mode: str
    fg_mode: str  # foreground pixel metrics (fg_psnr)
    fg_embedding_mode: str  # foreground embeddings (fg_clip_t, fg_clip_i, fg_dinov2)
    lpips_net: str
    ssim_params: tuple[tuple[str, object], ...]
    clip_models: tuple[str, ...]  # preferred first
    choices: dict[str, tuple[FsmiChoice, ...]]  # metric name -> its fsmi choices


def _spec(name: str, protocol: Protocol) -> MetricSpec:
    region, measure = name.split("_", 1)
    size = protocol.size
    common = {"name": name, "region": region, "measure": measure, "size": size,
              "resize_rule": RESIZE_256 if size else "none", "fsmi_choices": protocol.choices.get(name, ())}
    if measure in ("psnr", "ssim"):
        mode = {"bg": protocol.bg_mode, "fg": protocol.fg_mode, "whole": "whole"}[region]
        return MetricSpec(**common, region_mode=mode, model=None, value_range=PSNR_RANGE, scale=1.0,
                          clamp="max 100 dB" if measure == "psnr" else "none", higher_is_better=True,
                          params=(("unit", "dB"),) if measure == "psnr" else protocol.ssim_params)
    if measure == "lpips":
        mode = protocol.bg_mode if region == "bg" else "whole"
        return MetricSpec(**common, region_mode=mode, model=f"lpips-{protocol.lpips_net}-v0.1",
                          value_range="RGB in [0, 1], mapped to [-1, 1] for the network", scale=1.0, clamp="none",
                          higher_is_better=False, params=(("net", protocol.lpips_net),))
    mode = protocol.fg_embedding_mode if region == "fg" else "whole"
    if measure == "dinov2":
        models = (DINOV2_MODEL,)
        params = (("feature", "CLS token after the final layer norm (pooler_output)"),)
    else:
        models = protocol.clip_models
        params = (("feature", "projected embedding (get_image_features / get_text_features)"),)
    is_text = measure == "clip_t"
    return MetricSpec(**common, region_mode=mode, model=models[0], fallback_models=models[1:],
                      value_range="uint8 RGB into the model's own preprocessing",
                      scale=100.0 if is_text else 1.0, clamp="max(0, .)" if is_text else "none",
                      higher_is_better=True, params=params + (("similarity", "cosine of L2-normalised features"),))


def _preset(protocol: Protocol) -> dict[str, MetricSpec]:
    return {name: _spec(name, protocol) for name in ALL_METRICS}


_FG, _WHOLE = MULTI_IMAGE_FOREGROUND, MULTI_IMAGE_WHOLE
PAPER = Protocol(
    size=256, bg_mode="zero_fill", fg_mode="smartedit_crop", fg_embedding_mode="smartedit_crop",
    lpips_net="squeeze", ssim_params=TORCHMETRICS_SSIM_PARAMS, clip_models=(CLIP_MODEL, OPEN_CLIP_MODEL),
    choices={"bg_psnr": (PSNR_CAP,), "fg_clip_t": (_FG,), "fg_psnr": (PSNR_CAP, _FG),
             "fg_clip_i": (_FG, CLIP_I_MODEL), "fg_dinov2": (_FG, DINOV2_FEATURE), "whole_psnr": (PSNR_CAP, _WHOLE),
             "whole_lpips": (_WHOLE,), "whole_clip_i": (_WHOLE, CLIP_I_MODEL),
             "whole_dinov2": (_WHOLE, DINOV2_FEATURE)})
STRICT_PROTOCOL = Protocol(
    size=None, bg_mode="masked", fg_mode="masked", fg_embedding_mode="bbox_crop", lpips_net="alex",
    ssim_params=SKIMAGE_SSIM_PARAMS, clip_models=(OPEN_CLIP_MODEL, CLIP_MODEL),
    choices={name: (STRICT,) for name in ALL_METRICS})

# `paper`: SmartEdit's evaluator for the single-image metrics (256x256, zero-filled background,
# torchmetrics' SSIM, SqueezeNet LPIPS, CLIP on SmartEdit's crop); the multi-image metrics computed the
# same way (fsmi's choices, recorded). `strict`: native resolution; only region pixels count; AlexNet LPIPS.
PROTOCOLS: dict[str, dict[str, MetricSpec]] = {
    "paper": _preset(PAPER),
    "strict": _preset(STRICT_PROTOCOL),
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
