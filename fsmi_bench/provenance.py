"""Provenance of a run: package versions, the git commit of the code, the sha256 of the weights used.

Everything here is cheap to import (stdlib only); versions come from installed package metadata, so
nothing heavy (torch, diffusers) is imported to learn its version.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text, exclusive_lock, sha256_bytes, sha256_file

# Packages whose versions can change a method's output or a metric's value.
TRACKED_PACKAGES = (
    "fsmi", "numpy", "pillow", "opencv-python", "opencv-python-headless", "scikit-image", "scipy",
    "torch", "torchvision", "diffusers", "transformers", "accelerate", "peft", "safetensors",
    "open_clip_torch", "lpips", "timm",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed version of each package, name -> version; packages that are not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit checked out at ``path`` (default: this package's folder), with "+dirty" when files
    differ from it; None outside a git checkout or before the first commit."""
    folder = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if status.returncode == 0 and status.stdout.strip() else "")


def fsmi_cache_dir() -> Path:
    """Root of fsmi's own caches: ``$FSMI_CACHE_DIR``, else ``$XDG_CACHE_HOME/fsmi``, else ``~/.cache/fsmi``."""
    root = os.environ.get("FSMI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fsmi")
    return Path(root)


def _digest_cache_file() -> Path:
    return fsmi_cache_dir() / "weights-sha256.json"


def _load_digest_cache() -> dict:
    try:
        cache = json.loads(_digest_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _save_digest_cache(cache: dict) -> None:
    """Merge ``cache`` into the file under a lock, so that processes hashing at once keep each other's digests."""
    path = _digest_cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path.with_name(f".{path.name}.lock"), f"digest cache {path}", wait_s=30):
            merged = {**_load_digest_cache(), **cache}
            atomic_write_text(path, json.dumps(merged, sort_keys=True))
    except (OSError, BadInputError):
        pass  # a read-only or busy cache only costs time on the next run


def _file_sha256_cached(path: Path, cache: dict) -> str:
    # Weight files are gigabytes: hashing them on every run would cost minutes, so the digest is
    # cached under the file's resolved path, size and modification time (any change re-hashes).
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in cache:
        cache[key] = sha256_file(path)
    return cache[key]


def weights_sha256(path: str | os.PathLike, cache: dict | None = None) -> str:
    """sha256 of a weight file, or of a folder: the sha256 of its sorted "relative path  file sha256" lines
    (hidden files and folders skipped), so the same files anywhere give the same digest.

    The one weights hasher of fsmi: run.json and every metric spec record the same digest for the same
    weights. File digests are cached in ``fsmi_cache_dir()/weights-sha256.json``; pass ``cache`` (a dict)
    to hash several paths with one read and one write of that file.
    """
    own_cache = cache is None
    cache = _load_digest_cache() if own_cache else cache
    size_before = len(cache)
    path = Path(path)
    if path.is_file():
        digest = _file_sha256_cached(path, cache)
    elif path.is_dir():
        lines = []
        for file in sorted(path.rglob("*")):
            relative = file.relative_to(path)
            if not file.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            lines.append(f"{relative.as_posix()}  {_file_sha256_cached(file, cache)}\n")
        digest = sha256_bytes("".join(lines).encode("utf-8"))
    else:
        raise FileNotFoundError(f"weights path {path} does not exist")
    if own_cache and len(cache) != size_before:
        _save_digest_cache(cache)
    return digest


def weights_provenance(weights: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{name: {"path": absolute path, "sha256": digest}}`` for each weight path a method reports."""
    cache = _load_digest_cache()
    size_before = len(cache)
    result = {}
    for name, path in sorted(weights.items()):
        resolved = Path(path).expanduser().resolve()
        result[name] = {"path": str(resolved), "sha256": weights_sha256(resolved, cache)}
    if len(cache) != size_before:
        _save_digest_cache(cache)
    return result
