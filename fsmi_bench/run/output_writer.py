"""Writing a run's outputs beside the edits, and knowing them again without decoding them.

``OutputWriter``: PNG encoding is most of the engine's own cost per edit. Outputs are encoded and written
on a background thread while the method makes the next edit (OpenCV's encoder releases the GIL, so the
two use two cores); at most ``MAX_WAITING`` outputs wait, and their outcomes come back in order. An output
identical to the one before (``identity`` returns the scene for all 9 mask conditions) is encoded once.

``VerifiedOutputs``: a record, beside the run file, of each output this run wrote or decoded in full, with
its file's size, times, inode and sha256. A resumed run keeps an output whose file still has exactly
those without decoding it again; any write to the file, even one that puts its old time back, changes
its status-change time (which no user call can set), so that file is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsmi_bench.io import atomic_write_bytes, atomic_write_text

MAX_WAITING = 2  # outputs encoded or waiting at once: memory stays a few images however long the run


@dataclass(frozen=True)
class Written:
    """The outcome of one output: ``error`` is None when it was written, with its ``sha256``."""

    item: object  # what ``submit`` was given (the engine's work item)
    original_size: tuple[int, int] | None
    sha256: str | None = None
    error: BaseException | None = None


class OutputWriter:
    """Encodes (``encode(image) -> bytes``) and writes (``write(path, bytes)``, atomic) outputs on one
    background thread, in order."""

    def __init__(self, encode: Callable[[np.ndarray], bytes],
                 write: Callable[[Path, bytes], None] = atomic_write_bytes):
        from concurrent.futures import ThreadPoolExecutor

        self._encode = encode
        self._write_file = write
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsmi-output-writer")
        self._waiting: deque = deque()
        self._last: tuple[np.ndarray, bytes] | None = None  # only the writer thread touches it

    def submit(self, item, path: Path, image: np.ndarray, original_size) -> list[Written]:
        """Queue ``image`` for ``path``; returns the outcomes that are ready (waiting, if ``MAX_WAITING`` are
        queued, for the oldest)."""
        self._waiting.append(self._executor.submit(self._write, item, path, image, original_size))
        done = []
        while self._waiting and (len(self._waiting) > MAX_WAITING or self._waiting[0].done()):
            done.append(self._waiting.popleft().result())
        return done

    def close(self) -> list[Written]:
        """Wait for every queued output; their outcomes, in order."""
        done = [future.result() for future in self._waiting]
        self._waiting.clear()
        self._executor.shutdown(wait=True)
        return done

    def _write(self, item, path: Path, image: np.ndarray, original_size) -> Written:
        try:
            if self._last is not None and self._last[0].shape == image.shape and np.array_equal(self._last[0], image):
                data = self._last[1]
            else:
                data = self._encode(image)
                self._last = (image, data)
            self._write_file(path, data)
            return Written(item, original_size, hashlib.sha256(data).hexdigest())
        except Exception as error:  # the engine records it against this item (or stops, for a full disk)
            return Written(item, original_size, error=error)


def _signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


class VerifiedOutputs:
    """Outputs known valid, by path relative to the run folder: [size, mtime_ns, ctime_ns, inode, sha256]."""

    def __init__(self, path: Path, root: Path, entries: dict[str, list] | None = None):
        self.path = path
        self.root = root.resolve()
        self.entries = dict(entries or {})

    @classmethod
    def load(cls, path: Path, root: Path) -> VerifiedOutputs:
        """The record at ``path`` (empty if it is absent or unreadable: outputs are then decoded again)."""
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        return cls(path, root, {key: value for key, value in entries.items()
                                if isinstance(value, list) and len(value) == 5})

    def _key(self, output: Path) -> str:
        # Output paths are built from checked names (no ".." nor links inside the run folder), so the
        # absolute path usually lies under the resolved root already; resolving is the slow way.
        absolute = output if output.is_absolute() else Path(os.path.abspath(output))
        inside = absolute if absolute.is_relative_to(self.root) else output.resolve()
        return inside.relative_to(self.root).as_posix()

    @classmethod
    def of_run_folder(cls, root: Path) -> VerifiedOutputs:
        """Every record in a run folder (one per run file: shards keep their own), merged; read-only."""
        merged: dict[str, list] = {}
        for path in sorted(Path(root).glob(".run*.outputs.json")):
            merged.update(cls.load(path, Path(root)).entries)
        return cls(Path(root) / ".unsaved", Path(root), merged)

    def knows(self, output: Path) -> bool:
        """True if ``output`` is, unchanged, a file this run wrote or decoded in full."""
        return self.sha256(output) is not None

    def sha256(self, output: Path) -> str | None:
        """The recorded sha256 of ``output`` if its file is unchanged since, else None."""
        try:
            entry = self.entries.get(self._key(output))
            if entry is not None and _signature(output.stat()) == entry[:4]:
                return entry[4]
        except (OSError, ValueError):  # gone, or not under the run folder
            pass
        return None

    def add(self, output: Path, sha256: str | None = None) -> None:
        """Record ``output`` as it is now (its sha256 computed if not given)."""
        try:
            stat = output.stat()
            if sha256 is None:
                sha256 = hashlib.sha256(output.read_bytes()).hexdigest()
        except OSError:
            return
        self.entries[self._key(output)] = [*_signature(stat), sha256]

    def forget(self, output: Path) -> None:
        self.entries.pop(self._key(output), None)

    def save(self) -> None:
        try:
            atomic_write_text(self.path, json.dumps(self.entries, sort_keys=True, separators=(",", ":")))
        except OSError:
            pass  # without the record, the next run decodes the outputs again


def verified_outputs_path(run_path: Path) -> Path:
    """The record kept beside a run file (``run.json`` -> ``.run.outputs.json``)."""
    return run_path.with_name(f".{run_path.stem}.outputs.json")
