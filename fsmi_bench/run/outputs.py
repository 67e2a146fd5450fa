"""A method's output on its way to the run folder: mapped to the scene's size, encoded as the engine writes
it, and checked when found on disk (resume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError


def map_to_scene_size(output, width: int, height: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A method's output as RGB uint8 (height, width, 3), and its original (width, height) if it was resized.

    Accepts RGB uint8 arrays, grayscale uint8 (repeated to RGB), RGBA uint8 (alpha dropped) and PIL
    images. Anything else (floats, wrong rank) is refused: silently rescaling floats would hide a bug.
    """
    from PIL import Image

    if isinstance(output, Image.Image):
        output = np.asarray(output.convert("RGB"))
    if not isinstance(output, np.ndarray):
        raise BadInputError(f"bad output: expected an RGB uint8 array, got {type(output).__name__}")
    if output.dtype != np.uint8:
        raise BadInputError(f"bad output: expected dtype uint8, got {output.dtype}")
    if output.ndim == 2:
        output = np.repeat(output[..., None], 3, axis=2)
    elif output.ndim == 3 and output.shape[2] == 4:
        output = output[..., :3]
    if output.ndim != 3 or output.shape[2] != 3 or output.shape[0] == 0 or output.shape[1] == 0:
        raise BadInputError(f"bad output: expected shape (H, W, 3), got {output.shape}")
    if output.shape[:2] == (height, width):
        return np.ascontiguousarray(output), None
    from fsmi_bench.benchmark.compose import resize_rgb

    original = (int(output.shape[1]), int(output.shape[0]))
    return resize_rgb(np.ascontiguousarray(output), width, height), original


def encode_output_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 output.

    Encoding is most of the engine's own cost per edit. On 512 px photos, one fixed PNG filter ("average")
    with zlib's RLE strategy takes about a tenth of the time of ``fsmi_bench.io.save_png`` (adaptive
    filters, default deflate) for files about 2% larger; being lossless, it gives the scorer the same pixels.
    """
    import cv2

    parameters = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                  cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_AVG]
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), parameters)
    if not ok:
        raise BadInputError(f"bad output: OpenCV could not encode an image of shape {image.shape} as PNG")
    return data.tobytes()


def is_valid_output(path: Path, width: int, height: int) -> bool:
    """True if ``path`` decodes completely as an RGB image of the given size."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.size != (width, height) or image.mode != "RGB":
                return False
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True
