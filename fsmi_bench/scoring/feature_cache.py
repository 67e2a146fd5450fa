"""On-disk cache of features and values, keyed by sha256 of what determines them.

Keys combine the sha256 of the exact pixels a model sees (or the text it reads) with the metric or
model spec and the weights' sha256, so a cached entry can only be reused for the identical
computation. Entries live under ``$FSMI_CACHE_DIR/features`` (default ``~/.cache/fsmi/features``),
never inside the package, one ``.npy`` file each, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_bytes


def array_key(*parts) -> str:
    """sha256 over strings and arrays (dtype, shape and bytes of each array)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class FeatureCache:
    """A folder of ``<key[:2]>/<key>.npy`` files; ``root=None`` makes a cache that stores nothing."""

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else Path(root)
        self.hits = 0
        self.misses = 0
        self._count_lock = threading.Lock()  # look-ups come from several worker threads

    @classmethod
    def default(cls) -> "FeatureCache":
        from fsmi_bench.provenance import fsmi_cache_dir

        return cls(fsmi_cache_dir() / "features")

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        value = None
        if self.root is not None:
            try:
                value = np.load(self._path(key), allow_pickle=False)
            except (OSError, ValueError):
                pass  # absent, or unreadable (e.g. a foreign file): recompute rather than trust it
        with self._count_lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        # One file per key, written atomically: writers of one key write the same bytes, so no lock is needed.
        try:
            atomic_write_bytes(self._path(key), buffer.getvalue())
        except OSError as error:
            raise BadInputError(f"cannot write to the feature cache {self.root}: {error.strerror or error}; set "
                                "FSMI_CACHE_DIR to a writable folder, or pass --no-cache") from None
