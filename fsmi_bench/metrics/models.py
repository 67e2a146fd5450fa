"""The models behind the learned metrics, each loaded once, on first use, from local weights.

``ModelBank`` resolves weights without loading anything (so missing weights are known before any
work starts), loads a model only when an uncached value needs it, and knows the identity of the
weights (sha256) that goes into every metric spec and cache key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fsmi_bench.errors import MissingWeightsError
from fsmi_bench.metrics.specs import CLIP_MODEL, DINOV2_MODEL, OPEN_CLIP_MODEL
from fsmi_bench.metrics.weights import MODEL_WEIGHTS, ResolvedWeight, missing_message, resolve


@dataclass(frozen=True)
class ModelStatus:
    """Whether a metric model can run: ``weights_id`` is the weights' sha256 (several joined by '+')."""

    model: str
    present: bool
    weights_id: str
    reason: str
    resolved: tuple[ResolvedWeight, ...]


def state_id(module) -> str:
    """sha256 of a module's parameters and buffers (identifies in-memory, e.g. random, weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "state:" + digest.hexdigest()


class ModelBank:
    """Encoders for CLIP (Hugging Face folder or open_clip checkpoint), DINOv2 and LPIPS.

    Normal use: ``ModelBank(explicit_weights, device)`` finds local weights (see ``weights.py``).
    Tests and speed runs pass ready-made encoders in ``preloaded`` ({model name: encoder}); their
    weights are identified by the sha256 of their parameters, prefixed ``state:``, so numbers from
    them can never be mistaken for (or share a cache entry with) numbers from real weights.
    """

    def __init__(self, explicit_weights: dict[str, str] | None = None, device: str = "cpu",
                 preloaded: dict | None = None):
        self.explicit = dict(explicit_weights or {})
        self.device = device
        self._loaded: dict = {}
        self._status: dict[str, ModelStatus] = {}
        for model, encoder in (preloaded or {}).items():
            self._loaded[model] = encoder
            self._status[model] = ModelStatus(model, True, state_id(_torch_module(encoder)), "", ())

    def status(self, model: str) -> ModelStatus:
        if model not in self._status:
            resolved = tuple(resolve(name, self.explicit) for name in MODEL_WEIGHTS[model])
            missing = [item for item in resolved if not item.present]
            if missing:
                reason = " | ".join(missing_message(item) for item in missing)
                self._status[model] = ModelStatus(model, False, "missing", reason, resolved)
            else:
                weights_id = "+".join(item.sha256 for item in resolved)
                self._status[model] = ModelStatus(model, True, weights_id, "", resolved)
        return self._status[model]

    def choose(self, models: tuple[str, ...]) -> ModelStatus:
        """The status of the first of ``models`` (a spec's ``accepted_models``, preferred first) whose
        weights are here; if none is, a missing status whose reason names every one of them."""
        statuses = [self.status(model) for model in models]
        for status in statuses:
            if status.present:
                return status
        reason = statuses[0].reason if len(statuses) == 1 else " | or | ".join(
            f"{status.model}: {status.reason}" for status in statuses)
        return ModelStatus(models[0], False, "missing", reason, ())

    def get(self, model: str):
        """The encoder for ``model`` (HfClipEncoder, ClipEncoder, DinoEncoder or LpipsDistance), loaded once."""
        if model in self._loaded:
            return self._loaded[model]
        status = self.status(model)
        if not status.present:
            raise MissingWeightsError(status.reason)
        paths = [item.path for item in status.resolved]
        if model == CLIP_MODEL:
            from fsmi_bench.metrics.clip_metric import HfClipEncoder, load_hf_clip

            encoder = HfClipEncoder(*load_hf_clip(paths[0], self.device), device=self.device)
        elif model == OPEN_CLIP_MODEL:
            from fsmi_bench.metrics.clip_metric import ClipEncoder, load_open_clip

            encoder = ClipEncoder(*load_open_clip(model, paths[0], self.device), device=self.device)
        elif model == DINOV2_MODEL:
            from fsmi_bench.metrics.dino_metric import DinoEncoder, load_dinov2, load_dinov2_processor

            encoder = DinoEncoder(load_dinov2(paths[0], self.device), load_dinov2_processor(paths[0]),
                                  device=self.device)
        elif model.startswith("lpips-"):
            from fsmi_bench.metrics.lpips_metric import LpipsDistance, build_lpips

            net = model.split("-")[1]
            encoder = LpipsDistance(build_lpips(net, paths[0], paths[1]), device=self.device)
        else:
            raise ValueError(f"no loader for metric model {model!r}")
        self._loaded[model] = encoder
        return encoder


def _torch_module(encoder):
    return encoder.model
