"""What the diffusers-based methods share: finding weights, dtype, CPU offload, sizes, seeds.

Conventions (every helper here):
- images are RGB uint8 numpy arrays (H, W, 3); masks are bool (H, W), True = region to edit;
- diffusers inpainting pipelines take the mask as an "L" image where white (255) = repaint, so
  True maps to 255;
- the pipelines need sides divisible by 8: the scene (and mask) are resized to a *working size*
  whose long side is ``working_long_side`` (512 by default, what SD 1.5 was trained at) and whose
  sides are multiples of 8, keeping the aspect ratio; the output is resized back to the scene's
  size (bicubic) before it is returned, so the run engine's own mapping is the identity;
- seeding uses a CPU ``torch.Generator`` so that the same seed gives the same initial noise on any
  device.

Weights come from ``config["weights"]`` (a local diffusers folder, the CLI's ``--weights PATH``) or
from a model id (``config["model_id"]``, default per method) found in the local Hugging Face cache
with ``local_files_only=True``. Nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.run.method import EditRequest, Method
from fsmi_bench.run.option_types import check_option_types

SIZE_MULTIPLE = 8
DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")
# The kind of each option (shared and method-specific), checked before anything is loaded.
OPTION_KINDS = {"weights": "str", "model_id": "str", "num_inference_steps": "positive_int", "guidance_scale": "number",
                "torch_dtype": "str", "cpu_offload": "bool", "working_long_side": "positive_int",
                "disable_safety_checker": "bool", "image_guidance_scale": "number", "prompt_template": "str",
                "remove_prompt": "str", "negative_prompt": "str"}


@dataclass(frozen=True)
class DiffusersOptions:
    """Options shared by the diffusers methods (config keys of the same names)."""

    weights: str | None = None  # local diffusers folder; overrides model_id
    model_id: str = ""  # looked up in the local HF cache only
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    torch_dtype: str = "auto"  # auto = float16 on CUDA, float32 elsewhere
    cpu_offload: bool = False  # enable_model_cpu_offload (needs accelerate and a GPU)
    working_long_side: int = 512  # pixels; rounded to a multiple of 8
    disable_safety_checker: bool = True  # a blacked-out output would be scored as an edit

    @classmethod
    def from_config(cls, config: dict, default_model_id: str, extra_keys: tuple[str, ...] = ()) -> "DiffusersOptions":
        known = set(cls.__dataclass_fields__) | set(extra_keys)
        unknown = sorted(set(config) - known)
        if unknown:
            raise BadInputError(f"unknown config key(s) {unknown}; known: {sorted(known)}")
        check_option_types(config, {key: kind for key, kind in OPTION_KINDS.items() if key in known},
                           default_model_id.rpartition("/")[2] or "method")
        values = {key: config[key] for key in cls.__dataclass_fields__ if key in config}
        values.setdefault("model_id", default_model_id)
        options = cls(**values)
        if options.torch_dtype not in DTYPE_NAMES:
            raise BadInputError(f"torch_dtype must be one of {DTYPE_NAMES}, got {options.torch_dtype!r}")
        if options.num_inference_steps < 1:
            raise BadInputError("num_inference_steps must be at least 1")
        if options.working_long_side < SIZE_MULTIPLE:
            raise BadInputError(f"working_long_side must be at least {SIZE_MULTIPLE}")
        return options


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder in use (HF_HUB_CACHE / HF_HOME aware)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_weights(options: DiffusersOptions, method_name: str) -> Path:
    """Local folder of a diffusers pipeline: ``options.weights`` or the cached ``options.model_id``.

    Raises MissingWeightsError naming the model id, the ``--weights`` flag / ``weights`` config key
    and the cache folder that was searched.
    """
    if options.weights:
        path = Path(options.weights).expanduser()
        if not (path / "model_index.json").is_file():
            raise MissingWeightsError(
                f"{method_name}: {path} is not a diffusers pipeline folder (no model_index.json); "
                f"pass --weights PATH (config key 'weights') pointing at a folder saved with save_pretrained "
                f"or downloaded from {options.model_id}"
            )
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(options.model_id, local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not in the cache"
        raise MissingWeightsError(
            f"{method_name}: weights for {options.model_id!r} are not in the local Hugging Face cache "
            f"({hf_cache_dir()}); download them there (huggingface-cli download {options.model_id}) "
            f"or pass --weights PATH (config key 'weights') to a local diffusers folder"
        ) from None


def resolve_dtype(name: str, device: str):
    """torch dtype for a pipeline: ``auto`` is float16 on CUDA and float32 elsewhere."""
    import torch

    if name == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, name)


def load_pipeline(pipeline_class, path: Path, options: DiffusersOptions, device: str):
    """Load ``pipeline_class`` from a local folder (never touching the network) and place it."""
    dtype = resolve_dtype(options.torch_dtype, device)
    kwargs = {"torch_dtype": dtype, "local_files_only": True}
    if options.disable_safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipeline = pipeline_class.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as error:
        raise MissingWeightsError(f"cannot load {pipeline_class.__name__} from {path}: {error}") from None
    return place_pipeline(pipeline, options, device)


def place_pipeline(pipeline, options: DiffusersOptions, device: str):
    """Move a pipeline to ``device``, or let accelerate offload it (``cpu_offload``); silence its bar."""
    if options.cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def working_size(height: int, width: int, long_side: int = 512, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(height, width) with the long side ~``long_side`` and both sides multiples of ``multiple``."""
    if height < 1 or width < 1:
        raise BadInputError(f"image size must be positive, got {height}x{width}")
    scale = long_side / max(height, width)
    rounded = [max(multiple, int(round(side * scale / multiple)) * multiple) for side in (height, width)]
    return rounded[0], rounded[1]


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to (height, width), bicubic; returns the input if already that size."""
    from fsmi_bench.benchmark.compose import resize_rgb as resize_to

    height, width = size
    return image if image.shape[:2] == (height, width) else resize_to(image, width, height)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (height, width), nearest neighbour so it stays binary."""
    from PIL import Image

    height, width = size
    if mask.shape == (height, width):
        return mask.astype(bool)
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(image) > 127


def to_pil_rgb(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")


def to_pil_mask(mask: np.ndarray):
    """A bool mask as an "L" image, 255 = True = region to edit (the diffusers inpainting polarity)."""
    from PIL import Image

    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def from_pil_rgb(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def cpu_generator(seed: int):
    """A seeded CPU generator: same noise for the same seed whatever the device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


class DiffusersMethod(Method):
    """A method backed by one diffusers pipeline class, loaded once in ``setup``.

    Subclasses set ``pipeline_class_name``, ``default_model_id`` and implement ``run_pipeline``,
    which gets the scene and mask already at the working size and returns a PIL image.
    """

    pipeline_class_name = ""
    default_model_id = ""
    extra_config_keys: tuple[str, ...] = ()
    config_defaults: dict = {}  # the method's own defaults for shared options (e.g. its paper's steps)

    def __init__(self, config: dict | None = None, device: str = "cpu"):
        super().__init__(config, device)
        self.options = DiffusersOptions.from_config({**self.config_defaults, **self.config}, self.default_model_id,
                                                    self.extra_config_keys)
        self.pipeline = None
        self._weights_path: Path | None = None

    def setup(self) -> None:
        if self.pipeline is not None:
            return
        import diffusers

        self._weights_path = resolve_weights(self.options, self.name)
        pipeline_class = getattr(diffusers, self.pipeline_class_name)
        self.pipeline = load_pipeline(pipeline_class, self._weights_path, self.options, self.device)

    def weights(self) -> dict[str, str]:
        if self._weights_path is None:
            self._weights_path = resolve_weights(self.options, self.name)
        return {"pipeline": str(self._weights_path)}

    def edit(self, request: EditRequest) -> np.ndarray:
        self.setup()
        import torch

        scene_height, scene_width = request.scene.shape[:2]
        size = working_size(scene_height, scene_width, self.options.working_long_side)
        scene = resize_rgb(request.scene, size)
        mask = resize_mask(request.mask, size)
        with torch.inference_mode():
            output = self.run_pipeline(request, scene, mask, size, cpu_generator(request.seed))
        return resize_rgb(from_pil_rgb(output), (scene_height, scene_width))

    def run_pipeline(self, request: EditRequest, scene: np.ndarray, mask: np.ndarray, size, generator):
        raise NotImplementedError

    def close(self) -> None:
        self.pipeline = None
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
