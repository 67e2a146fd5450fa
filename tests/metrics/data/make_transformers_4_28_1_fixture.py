"""Writes clip_processing_transformers_4_28_1.npz: CLIP image pixels and token ids as transformers 4.28.1
(the version SmartEdit's requirements.txt pins) computes them for the hub folder of
openai/clip-vit-large-patch14 (its preprocessor_config.json and OpenAI's BPE vocabulary).

Run from the repository root with transformers 4.28.1 importable ahead of the installed one, e.g.
    pip install --no-deps --target /tmp/tf428 transformers==4.28.1 tokenizers==0.13.3 huggingface_hub==0.16.4
    PYTHONPATH=/tmp/tf428:. python tests/metrics/data/make_transformers_4_28_1_fixture.py
The test ``test_hf_clip_processing_is_that_of_transformers_4_28_1_which_smartedit_pins`` checks fsmi's
processing against it. Only every 7th pixel of each row and column is stored, to keep the file small.
"""

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import CLIPProcessor

from tests.support.metric_models import (
    CLIP_HUB_PREPROCESSOR_CONFIG,
    CLIP_HUB_TOKENIZER_CONFIG,
    write_clip_bpe_vocabulary,
)

SHAPES = ((37, 90), (3, 50), (90, 7), (1, 1), (64, 64), (255, 240))
TEXTS = ("cup", "a red chair", "Dog!", "teddy bear", "hair drier", "potted plant", "a cat sitting on a mat")


def png_bytes(image: np.ndarray) -> bytes:
    """Images are stored as PNG bytes (lossless; the large gradient compresses to almost nothing)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    assert transformers.__version__ == "4.28.1", transformers.__version__
    rng = np.random.default_rng(0)
    record = {"image_count": np.array(len(SHAPES)), "texts": np.array(TEXTS)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_clip_bpe_vocabulary(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(CLIP_HUB_PREPROCESSOR_CONFIG))
        (folder / "tokenizer_config.json").write_text(json.dumps(CLIP_HUB_TOKENIZER_CONFIG))
        processor = CLIPProcessor.from_pretrained(str(folder))
        for index, (height, width) in enumerate(SHAPES):
            if height * width > 10_000:  # a smooth gradient: a large image (scaled down) that compresses well
                rows, columns = np.mgrid[0:height, 0:width]
                base = np.stack([rows * 255 // height, columns * 255 // width, (rows + columns) % 256], axis=-1)
                image = base.astype(np.uint8)
            else:
                image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            pixels = processor(images=[torch.from_numpy(image).permute(2, 0, 1)], return_tensors="pt")["pixel_values"]
            record[f"png_{index}"] = np.frombuffer(png_bytes(image), dtype=np.uint8)
            record[f"pixels_{index}"] = pixels.numpy()[0, :, ::7, ::7]
        for index, text in enumerate(TEXTS):
            record[f"ids_{index}"] = processor(text=[text], return_tensors="pt", padding=True)["input_ids"].numpy()[0]
    out = Path(__file__).parent / "clip_processing_transformers_4_28_1.npz"
    np.savez_compressed(out, **record)
    print(f"wrote {out} ({out.stat().st_size} bytes) with transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
