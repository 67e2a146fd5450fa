"""Finding metric weights on this machine. Nothing is ever downloaded.

Each weight is looked for, in order:
1. an explicit path (``fsmi score --weights NAME=PATH`` or a ``--weights-config`` JSON file
   ``{"NAME": "PATH", ...}``);
2. its environment variable (e.g. ``FSMI_CLIP_WEIGHTS``);
3. the local caches: the Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``) or torch's hub cache (``$TORCH_HOME/hub/checkpoints``, else
   ``~/.cache/torch/hub/checkpoints``), or the files the ``lpips`` package ships.

CLIP ViT-L/14 (OpenAI) is accepted in two formats holding the same weights: ``clip-vit-l-14-hf``, the
Hugging Face folder of openai/clip-vit-large-patch14 that SmartEdit's evaluator loads (the ``paper``
protocol's first choice), and ``clip-vit-l-14``, an open_clip checkpoint (``strict``'s first choice).
A metric takes its protocol's first choice when present, else the other; the results rows say which.

LPIPS needs two files per network: the package's linear layers (shipped inside ``lpips``:
``lpips/weights/v0.1/<net>.pth``) and the ImageNet weights of the torchvision backbone, which the
package would normally download through torchvision; here they must already be on disk
(``alexnet-owt-7be5be79.pth`` or ``squeezenet1_1-b8a52dc0.pth`` in torch's hub cache).

The sha256 of what is found (``provenance.weights_sha256``, the one hasher that run.json uses too) is
recorded with every number; hashing a large file is cached in
``$FSMI_CACHE_DIR/weights-sha256.json`` keyed by (path, size, mtime).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.provenance import weights_sha256


@dataclass(frozen=True)
class WeightRequirement:
    """One weight file or folder a metric needs.

    name: the key used by ``--weights NAME=PATH`` and weight config files. env: environment variable.
    kind: "file" or "dir" (a Hugging Face model folder). cache_paths: relative candidates, as (cache
    root name, glob pattern) with root "hf" or "torch" or "lpips". folder_files: for a "dir", the files
    it must hold, each group a list of alternatives (one of them is enough).
    """

    name: str
    env: str
    kind: str
    description: str
    cache_paths: tuple[tuple[str, str], ...]
    folder_files: tuple[tuple[str, ...], ...] = (("config.json",),)

    def missing_files(self, path: Path) -> list[str]:
        """What a folder given for this weight lacks ("" joined alternatives as "a or b")."""
        return [" or ".join(group) for group in self.folder_files
                if not any((path / name).is_file() for name in group)]


@dataclass(frozen=True)
class ResolvedWeight:
    """Where a weight was found (``path`` None if not found), its sha256, and every place looked at."""

    name: str
    path: Path | None
    sha256: str | None
    source: str  # "flag", "config", "env", "cache", "package" or "missing"
    looked: tuple[str, ...]

    @property
    def present(self) -> bool:
        return self.path is not None


def _hf_cache_root() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def _torch_cache_root() -> Path:
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return home / "hub" / "checkpoints"


def _lpips_package_root() -> Path | None:
    # Found without importing lpips (which imports torch): the package's folder on sys.path.
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


_OPENAI_CLIP_L14 = "models--timm--vit_large_patch14_clip_224.openai/snapshots/*/"
REQUIREMENTS: dict[str, WeightRequirement] = {
    "clip-vit-l-14-hf": WeightRequirement(
        "clip-vit-l-14-hf", "FSMI_CLIP_HF_WEIGHTS", "dir",
        "Hugging Face folder of openai/clip-vit-large-patch14, the format SmartEdit's evaluator loads "
        "(config.json, model.safetensors or pytorch_model.bin, preprocessor_config.json, tokenizer files)",
        (("hf", "models--openai--clip-vit-large-patch14/snapshots/*/"),),
        (("config.json",), ("model.safetensors", "pytorch_model.bin"),
         ("preprocessor_config.json", "processor_config.json"), ("tokenizer.json", "vocab.json"))),
    "clip-vit-l-14": WeightRequirement(
        "clip-vit-l-14", "FSMI_CLIP_WEIGHTS", "file",
        "open_clip ViT-L-14 (OpenAI) checkpoint: open_clip_model.safetensors or open_clip_pytorch_model.bin",
        (("hf", _OPENAI_CLIP_L14 + "open_clip_model.safetensors"),
         ("hf", _OPENAI_CLIP_L14 + "open_clip_pytorch_model.bin"))),
    "dinov2-small": WeightRequirement(
        "dinov2-small", "FSMI_DINOV2_WEIGHTS", "dir",
        "Hugging Face folder of facebook/dinov2-small (config.json, model.safetensors; "
        "preprocessor_config.json used when present)",
        (("hf", "models--facebook--dinov2-small/snapshots/*/"),),
        (("config.json",), ("model.safetensors", "pytorch_model.bin"))),
    "lpips-alex-linear": WeightRequirement(
        "lpips-alex-linear", "FSMI_LPIPS_ALEX_WEIGHTS", "file",
        "LPIPS v0.1 linear layers for AlexNet (shipped in the lpips package as weights/v0.1/alex.pth)",
        (("lpips", "weights/v0.1/alex.pth"),)),
    "lpips-squeeze-linear": WeightRequirement(
        "lpips-squeeze-linear", "FSMI_LPIPS_SQUEEZE_WEIGHTS", "file",
        "LPIPS v0.1 linear layers for SqueezeNet (shipped in the lpips package as weights/v0.1/squeeze.pth)",
        (("lpips", "weights/v0.1/squeeze.pth"),)),
    "alexnet-imagenet": WeightRequirement(
        "alexnet-imagenet", "FSMI_ALEXNET_WEIGHTS", "file",
        "torchvision AlexNet ImageNet weights alexnet-owt-7be5be79.pth (LPIPS backbone)",
        (("torch", "alexnet-owt-7be5be79.pth"),)),
    "squeezenet-imagenet": WeightRequirement(
        "squeezenet-imagenet", "FSMI_SQUEEZENET_WEIGHTS", "file",
        "torchvision SqueezeNet 1.1 ImageNet weights squeezenet1_1-b8a52dc0.pth (LPIPS backbone)",
        (("torch", "squeezenet1_1-b8a52dc0.pth"),)),
}

# Which weights each measure's model needs (by MetricSpec.model and fallback_models).
MODEL_WEIGHTS: dict[str, tuple[str, ...]] = {
    "openai/clip-vit-large-patch14": ("clip-vit-l-14-hf",),
    "ViT-L-14": ("clip-vit-l-14",),
    "facebook/dinov2-small": ("dinov2-small",),
    "lpips-alex-v0.1": ("lpips-alex-linear", "alexnet-imagenet"),
    "lpips-squeeze-v0.1": ("lpips-squeeze-linear", "squeezenet-imagenet"),
}


def load_weights_config(path: str | os.PathLike | None) -> dict[str, str]:
    """Read a weights config file: JSON object {weight name: path}; unknown names are an error."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"weights config not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInputError(f"{path}: not valid JSON ({error.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise BadInputError(f"{path}: expected a JSON object {{weight name: path}}")
    check_weight_names(data, str(path))
    return {name: str(Path(value).expanduser()) for name, value in data.items()}


def check_weight_names(mapping: dict, where: str) -> None:
    import difflib

    for name in mapping:
        if name not in REQUIREMENTS:
            close = difflib.get_close_matches(name, list(REQUIREMENTS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BadInputError(f"{where}: unknown weight name {name!r}{hint} (known: {', '.join(REQUIREMENTS)})")


def _usable(path: Path, requirement: WeightRequirement) -> bool:
    if requirement.kind == "dir":
        return path.is_dir() and not requirement.missing_files(path)
    return path.is_file()


def resolve(name: str, explicit: dict[str, str] | None = None, explicit_source: str = "flag") -> ResolvedWeight:
    """Find weight ``name``; never raises for a missing weight (see ``require``)."""
    requirement = REQUIREMENTS[name]
    looked: list[str] = []
    candidates: list[tuple[str, Path]] = []
    if explicit and name in explicit:
        candidates.append((explicit_source, Path(explicit[name])))
    if os.environ.get(requirement.env):
        candidates.append(("env", Path(os.environ[requirement.env])))
    else:
        looked.append(f"${requirement.env} (unset)")
    roots = {"hf": _hf_cache_root(), "torch": _torch_cache_root(), "lpips": _lpips_package_root()}
    for root_name, pattern in requirement.cache_paths:
        root = roots[root_name]
        if root is None:
            continue
        matches = sorted(root.glob(pattern)) if "*" in pattern else [root / pattern]
        if not matches:
            looked.append(str(root / pattern))
        source = "package" if root_name == "lpips" else "cache"
        candidates.extend((source, match) for match in matches)
    for source, path in candidates:
        looked.append(str(path))
        if _usable(path, requirement):
            return ResolvedWeight(name, path, weights_sha256(path), source, tuple(looked))
        if source in ("flag", "config", "env"):
            # An explicit path that is not there is a mistake worth stopping at, not a fallback.
            if requirement.kind == "dir" and path.is_dir():
                raise MissingWeightsError(f"weight {name!r} was given as {path} ({source}) but that folder lacks "
                                          f"{', '.join(requirement.missing_files(path))}")
            raise MissingWeightsError(
                f"weight {name!r} was given as {path} ({source}) but that "
                f"{'folder' if requirement.kind == 'dir' else 'file'} does not exist")
    return ResolvedWeight(name, None, None, "missing", tuple(looked))


def missing_message(resolved: ResolvedWeight) -> str:
    """One line: what is missing, where it was looked for, and how to provide it."""
    requirement = REQUIREMENTS[resolved.name]
    return (f"missing weights {resolved.name!r}: {requirement.description}; looked in "
            f"{'; '.join(resolved.looked)}; set ${requirement.env}, pass --weights {resolved.name}=PATH "
            "or put it in the cache path above")


def require(name: str, explicit: dict[str, str] | None = None) -> ResolvedWeight:
    """Like ``resolve`` but raises ``MissingWeightsError`` when the weight is not on this machine."""
    resolved = resolve(name, explicit)
    if not resolved.present:
        raise MissingWeightsError(missing_message(resolved))
    return resolved
