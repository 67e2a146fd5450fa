"""Compact FlexEdit checkpoints: what training changed, plus references to the frozen bases.

A model built around the user's LLaVA and CLIP (``paper`` config) is saved as a folder of
- ``config.json``: the FlexEditModel config (JSON values only);
- ``base_weights.json``: for each frozen base (``vllm``, ``image_encoder``) its class, folder and sha256
  (``fsmi_bench.provenance.weights_sha256``, the one weights hasher of fsmi), not a copy of its weights;
- ``diffusion_pytorch_model.safetensors`` (or shards with an index): every tensor that is not a frozen
  base's: the LoRA weights and the new ``<img_i>`` rows inside LLaVA, the Q-Former, the MEA, the null
  condition, and the UNet (trained in full, as in the paper).
Loading checks each base's digest first: a missing or changed base is a one-line error naming it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from flexedit_model.precision import frozen_dtype
from fsmi_bench.errors import IntegrityError, MissingWeightsError

BASES_FILE = "base_weights.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
# The parts of FlexEditModel that may be frozen bases, and the class each is loaded with.
# The VAE is a pipeline component, referenced from its own folder (``vae/base_weights.json``, latent_codec.py).
BASE_CLASSES = {"vllm": "LlavaForConditionalGeneration", "image_encoder": "CLIPVisionModelWithProjection",
                "vae": "AutoencoderKL"}
# Inside a referenced base, the tensors training adds (LoRA, new token rows): saved.
TRAINED_IN_BASE = ("lora_", ".new_rows")


@dataclass(frozen=True)
class BaseReference:
    """A frozen pretrained part of a saved model: where it was loaded from and its digest."""

    part: str  # "vllm" or "image_encoder"
    model_class: str  # the transformers class it loads with
    path: str  # absolute folder
    sha256: str  # weights_sha256 of the folder


def reference_base(part: str, folder: Path) -> BaseReference:
    from fsmi_bench.provenance import weights_sha256

    return BaseReference(part, BASE_CLASSES[part], str(Path(folder).resolve()), weights_sha256(folder))


def check_base(reference: BaseReference) -> Path:
    """The folder of ``reference``, after checking it is there and unchanged; a one-line MissingWeightsError
    or IntegrityError naming the base otherwise."""
    from fsmi_bench.provenance import weights_sha256

    folder = Path(reference.path)
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(f"base {reference.part} of this FlexEdit checkpoint is missing: "
                                  f"{folder / 'config.json'} not found; put the weights it was trained on back there")
    digest = weights_sha256(folder)
    if digest != reference.sha256:
        raise IntegrityError(f"base {reference.part} at {folder} has changed (sha256 {digest[:12]}, the checkpoint "
                             f"was trained on {reference.sha256[:12]}); put the original weights back")
    return folder


def load_base(reference: BaseReference, dtype: torch.dtype | None, verify: bool = True):
    """The base module of ``reference`` (checked against its digest when ``verify``), in ``dtype``."""
    import transformers

    folder = Path(reference.path)
    if verify:
        check_base(reference)
    elif not (folder / "config.json").is_file():
        raise MissingWeightsError(f"base {reference.part} of this FlexEdit checkpoint is missing: "
                                  f"{folder / 'config.json'} not found; put the weights it was trained on back there")
    model_class = getattr(transformers, reference.model_class)
    return model_class.from_pretrained(folder, dtype=dtype if dtype is not None else "auto")


def is_base_tensor(key: str, referenced_parts) -> bool:
    """Whether state-dict ``key`` belongs to a referenced frozen base (and is not one training adds)."""
    part = key.split(".", 1)[0]
    return part in referenced_parts and not any(marker in key for marker in TRAINED_IN_BASE)


def trained_state_dict(model) -> dict[str, torch.Tensor]:
    """The tensors a compact checkpoint stores: all but the referenced bases' own."""
    return {key: tensor for key, tensor in model.state_dict().items()
            if not is_base_tensor(key, model.base_references)}


def save_compact(model, folder: Path, max_shard_size="5GB") -> None:
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.save_config(folder)
    write_references(folder, model.base_references)
    state = {key: tensor.detach().cpu().contiguous() for key, tensor in trained_state_dict(model).items()}
    split = split_torch_state_dict_into_shards(state, filename_pattern=WEIGHTS_NAME.replace(".safetensors", "{suffix}.safetensors"),
                                               max_shard_size=max_shard_size)
    for stale in folder.glob("diffusion_pytorch_model*.safetensors"):
        stale.unlink()
    (folder / INDEX_NAME).unlink(missing_ok=True)
    for filename, keys in split.filename_to_tensors.items():
        save_file({key: state[key] for key in keys}, str(folder / filename), metadata={"format": "pt"})
    if split.is_sharded:
        total = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
        (folder / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total},
                                                     "weight_map": split.tensor_to_filename}, indent=2) + "\n")


def read_references(folder: Path) -> dict[str, BaseReference]:
    raw = json.loads((folder / BASES_FILE).read_text(encoding="utf-8"))
    return {part: BaseReference(**fields) for part, fields in raw.items()}


def write_references(folder: Path, references: dict[str, BaseReference]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    raw = {part: asdict(reference) for part, reference in references.items()}
    (folder / BASES_FILE).write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_saved_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (folder / INDEX_NAME).is_file():
        files = sorted(set(json.loads((folder / INDEX_NAME).read_text())["weight_map"].values()))
    else:
        files = [WEIGHTS_NAME]
    state = {}
    for name in files:
        if not (folder / name).is_file():
            raise MissingWeightsError(f"FlexEdit checkpoint {folder} is incomplete: {name} is missing")
        state.update(load_file(str(folder / name)))
    return state


def load_compact(model_class, folder: Path, torch_dtype: torch.dtype | None = None, device=None):
    """A FlexEditModel from a compact folder: its bases loaded (and verified) in ``torch_dtype`` (default:
    the ``"auto"`` policy of ``frozen_dtype`` for ``device``, a GPU if there is one), the rest from the files."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    init, _, _ = model_class.extract_init_dict(model_class.load_config(folder))
    references = read_references(folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype if torch_dtype is not None else frozen_dtype("auto", device)
    parts = {part: load_base(reference, dtype) for part, reference in references.items()}
    if "image_encoder" not in parts:
        with init_empty_weights():
            parts["image_encoder"] = CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(init["image_encoder_config"]))
    if "vllm" not in parts:
        raise ValueError(f"{folder}: a compact FlexEdit checkpoint must reference its LLaVA")
    # The UNet is stored in full: build it without spending time on a random initialisation.
    with init_empty_weights():
        unet = UNet2DConditionModel(**init["unet_config"])
    settings = {key: value for key, value in init.items()
                if key not in ("vllm_config", "image_encoder_config", "unet_config")}
    model = model_class.from_parts(parts["vllm"], parts["image_encoder"], unet, **settings)
    saved = _read_saved_tensors(folder)
    missing, unexpected = model.load_state_dict(saved, strict=False, assign=True)
    not_restored = [key for key in missing if not is_base_tensor(key, references)]
    if unexpected or not_restored:
        raise MissingWeightsError(f"FlexEdit checkpoint {folder} does not match its config: "
                                  f"{len(not_restored)} tensors missing (e.g. {not_restored[:1]}), "
                                  f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})")
    model.base_references = references
    return model.eval()
