"""DINOv2 similarity (ViT-S/14 by default) with transformers' ``Dinov2Model``.

Similarity = cosine of the CLS token of the last layer after the final layer norm
(``outputs.pooler_output``), between output and reference. Preprocessing is the one of the
Hugging Face DINOv2 image processor: shortest side resized to 256 (PIL bicubic), center crop
224 x 224, values /255 then ImageNet mean/std, RGB.
"""

from __future__ import annotations

import numpy as np
import torch

from fsmi_bench.metrics.clip_metric import unit_rows

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_dinov2(model_dir, device="cpu"):
    """``Dinov2Model`` from a local Hugging Face folder (config.json + weights); never downloads."""
    from transformers import Dinov2Model

    return Dinov2Model.from_pretrained(str(model_dir), local_files_only=True).to(device).eval()


def preprocess_dinov2(image: np.ndarray, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> normalised (3, crop, crop) float tensor."""
    from PIL import Image

    pil = Image.fromarray(image)
    width, height = pil.size
    # Same rounding as transformers' get_resize_output_image_size for "shortest_edge".
    if width <= height:
        new_size = (resize, int(resize * height / width))
    else:
        new_size = (int(resize * width / height), resize)
    pil = pil.resize(new_size, Image.BICUBIC)
    left = (new_size[0] - crop) // 2
    top = (new_size[1] - crop) // 2
    pil = pil.crop((left, top, left + crop, top + crop))
    array = np.asarray(pil, dtype=np.float32) / 255.0
    array = (array - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1)


class DinoEncoder:
    """Encodes images with one ``Dinov2Model``; returns L2-normalised float64 CLS features."""

    def __init__(self, model, device="cpu", resize: int = 256, crop: int = 224):
        self.model = model.to(device).eval()
        self.device = device
        self.resize = resize
        self.crop = crop

    @torch.no_grad()
    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        batch = torch.stack([preprocess_dinov2(image, self.resize, self.crop) for image in images])
        return unit_rows(self.model(pixel_values=batch.to(self.device)).pooler_output)
