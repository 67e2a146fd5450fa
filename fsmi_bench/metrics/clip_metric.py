"""CLIP-T and CLIP-I with CLIP ViT-L/14 (OpenAI), from either of the two formats its weights come in.

CLIP-T = 100 x cosine(image features, text features), clamped at 0 (as torchmetrics' CLIPScore).
CLIP-I = cosine(output image features, reference image features), in [-1, 1].
Features are the model's projected embeddings, L2-normalised.

- ``HfClipEncoder``: a Hugging Face folder (``openai/clip-vit-large-patch14``) through transformers'
  ``CLIPModel`` and the folder's ``CLIPProcessor``, called as torchmetrics' ``CLIPScore`` calls them in
  SmartEdit's evaluator. The image processor runs on its PIL backend, the processing of transformers
  4.28.1 that SmartEdit pins (transformers 5 defaults to a torchvision backend whose pixels differ by
  up to 0.03 after normalisation).
- ``ClipEncoder``: an open_clip checkpoint with open_clip's eval transform (resize the shortest side,
  center crop, CLIP mean/std) and open_clip's tokenizer, which works offline from its packaged BPE file.
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


def pil_backend_processor(processor_class, folder, **kwargs):
    """``processor_class.from_pretrained(folder)`` with its image processor on the PIL backend: the
    ``backend="pil"`` of transformers 5, the (then PIL-based) slow processor of transformers 4."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return processor_class.from_pretrained(str(folder), backend="pil", **kwargs)
    return processor_class.from_pretrained(str(folder), use_fast=False, **kwargs)


def projected_features(output) -> torch.Tensor:
    """The tensor of ``get_image_features`` / ``get_text_features``: transformers 4 returns it, transformers
    5 returns an output object whose ``pooler_output`` holds it."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load_hf_clip(folder, device="cpu"):
    """(``CLIPModel``, ``CLIPProcessor``) from a local Hugging Face folder; never downloads."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
    return model, pil_backend_processor(CLIPProcessor, folder, local_files_only=True)


class HfClipEncoder:
    """Encodes images and texts with a transformers ``CLIPModel`` exactly as torchmetrics' ``CLIPScore``
    feeds it; returns L2-normalised float64 features."""

    def __init__(self, model, processor, device="cpu"):
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device

    @torch.no_grad()
    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 (H, W, 3) images of any sizes -> (N, D) unit features.

        Each image goes to the processor as a uint8 (3, H, W) tensor, as SmartEdit's evaluator passes it
        (channels first: no ambiguity for crops 1 or 3 pixels tall)."""
        tensors = [torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images]
        pixels = self.processor(images=tensors, return_tensors="pt", padding=True)["pixel_values"]
        return unit_rows(projected_features(self.model.get_image_features(pixels.to(self.device))))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        processed = self.processor(text=list(texts), return_tensors="pt", padding=True)
        input_ids, attention_mask = processed["input_ids"], processed["attention_mask"]
        # torchmetrics cuts captions longer than the model's positions (with a warning) the same way.
        longest = self.model.config.text_config.max_position_embeddings
        input_ids, attention_mask = input_ids[..., :longest], attention_mask[..., :longest]
        output = self.model.get_text_features(input_ids.to(self.device), attention_mask.to(self.device))
        return unit_rows(projected_features(output))


def clip_t(image_feature: np.ndarray, text_feature: np.ndarray) -> float:
    """100 x cosine of unit features, clamped at 0."""
    return max(100.0 * float(np.dot(image_feature, text_feature)), 0.0)


def cosine(feature_a: np.ndarray, feature_b: np.ndarray) -> float:
    """Cosine of two unit features (CLIP-I, DINOv2 similarity)."""
    return float(np.dot(feature_a, feature_b))
