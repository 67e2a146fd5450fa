"""CLIP-T and CLIP-I with open_clip (ViT-L/14 by default).

CLIP-T = 100 x cosine(image features, text features), clamped at 0 (as torchmetrics' CLIPScore).
CLIP-I = cosine(output image features, reference image features), in [-1, 1].
Features are the model's projected embeddings, L2-normalised; images go through the model's own
eval transform (open_clip: resize the shortest side, center crop, CLIP mean/std) from PIL RGB.
The tokenizer is open_clip's, which works offline from its packaged BPE vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch

from fsmi_bench.errors import MissingWeightsError


def load_open_clip(model_name: str, weights_path=None, device="cpu", random_weights: bool = False):
    """(model, preprocess, tokenizer) of open_clip model ``model_name`` from a local checkpoint file.

    ``weights_path`` is passed to ``open_clip.create_model_and_transforms(name, pretrained=PATH)``,
    which loads a local file and never downloads. ``random_weights=True`` (tests, speed runs) builds the
    model with random weights when no path is given.
    """
    import open_clip

    if weights_path is None and not random_weights:
        raise MissingWeightsError(f"CLIP {model_name} needs a local checkpoint file")
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=None if weights_path is None else str(weights_path), device=device)
    tokenizer = open_clip.get_tokenizer(model_name)
    return model.eval(), preprocess, tokenizer


def unit_rows(features: torch.Tensor) -> np.ndarray:
    """L2-normalise each row; returned as float64 numpy so later arithmetic adds no float32 error."""
    features = features.double()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()


class ClipEncoder:
    """Encodes images and texts with one open_clip model; returns L2-normalised float64 features."""

    def __init__(self, model, preprocess, tokenizer, device="cpu"):
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device

    @torch.no_grad()
    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 images of any sizes -> (N, D) unit features."""
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(image)) for image in images]).to(self.device)
        return unit_rows(self.model.encode_image(batch))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return unit_rows(self.model.encode_text(tokens))


def clip_t(image_feature: np.ndarray, text_feature: np.ndarray) -> float:
    """100 x cosine of unit features, clamped at 0."""
    return max(100.0 * float(np.dot(image_feature, text_feature)), 0.0)


def cosine(feature_a: np.ndarray, feature_b: np.ndarray) -> float:
    """Cosine of two unit features (CLIP-I, DINOv2 similarity)."""
    return float(np.dot(feature_a, feature_b))
