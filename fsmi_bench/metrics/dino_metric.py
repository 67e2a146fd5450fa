"""DINOv2 similarity (ViT-S/14 by default) with transformers' ``Dinov2Model``.

Similarity = cosine of the CLS token of the last layer after the final layer norm
(``outputs.pooler_output``), between output and reference. Preprocessing is transformers' image
processor of the model's folder (``preprocessor_config.json``: for facebook/dinov2-* a
``BitImageProcessor`` that resizes the shortest side to 256 with PIL bicubic, center-crops 224 x 224,
divides by 255 and normalises with the ImageNet mean and std), run on its PIL backend: the default of
transformers 4, kept under transformers 5 (whose torchvision backend differs by up to 0.035 per pixel
after normalisation on random images) so that values do not depend on the installed major version. A
folder without that file gets the values facebook/dinov2 publishes (``DINOV2_PREPROCESSOR_CONFIG``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fsmi_bench.metrics.clip_metric import pil_backend_processor, unit_rows

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The preprocessor_config.json of facebook/dinov2-small (and -base, -large, -giant).
DINOV2_PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
    "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": list(IMAGENET_MEAN),
    "image_processor_type": "BitImageProcessor", "image_std": list(IMAGENET_STD), "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256},
}


def load_dinov2(model_dir, device="cpu"):
    """``Dinov2Model`` from a local Hugging Face folder (config.json + weights); never downloads."""
    from transformers import Dinov2Model

    return Dinov2Model.from_pretrained(str(model_dir), local_files_only=True).to(device).eval()


def load_dinov2_processor(model_dir=None):
    """The folder's image processor on the PIL backend, or facebook/dinov2's when the folder (or
    ``model_dir`` None) has none."""
    import json
    import tempfile

    from transformers import AutoImageProcessor

    folder = Path(model_dir) if model_dir is not None else None
    if folder is not None and any((folder / name).is_file()
                                  for name in ("preprocessor_config.json", "processor_config.json")):
        return pil_backend_processor(AutoImageProcessor, folder, local_files_only=True)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "preprocessor_config.json").write_text(json.dumps(DINOV2_PREPROCESSOR_CONFIG))
        return pil_backend_processor(AutoImageProcessor, scratch, local_files_only=True)


class DinoEncoder:
    """Encodes images with one ``Dinov2Model`` and its image processor; returns L2-normalised float64
    CLS features."""

    def __init__(self, model, processor, device="cpu"):
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device

    def pixel_values(self, images: list[np.ndarray]) -> torch.Tensor:
        """RGB uint8 (H, W, 3) images -> the processor's (N, 3, 224, 224) float tensor."""
        from PIL import Image

        return self.processor(images=[Image.fromarray(image) for image in images], return_tensors="pt")["pixel_values"]

    @torch.no_grad()
    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        return unit_rows(self.model(pixel_values=self.pixel_values(images).to(self.device)).pooler_output)
