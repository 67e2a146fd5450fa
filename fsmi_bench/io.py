"""File I/O with the guarantees every stage relies on.

- Writes are atomic: data goes to a temporary name in the same folder, then ``os.replace``.
  A killed process never leaves a half-written file under the final name.
- PNGs are written byte-deterministically (no timestamps, fixed compression), so a rebuild with
  the same arguments gives identical files and identical sha256.
- Images are ``uint8`` arrays, RGB, shape (H, W, 3); masks are ``bool`` arrays, shape (H, W),
  True = inside. Stored masks are 8-bit grayscale PNGs with 0 and 255.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError
from fsmi_bench.schema import PATH_PART_PATTERN

# Level 1: several times faster than the default 6, for files about a fifth larger.
PNG_COMPRESS_LEVEL = 1

# The largest image (width x height) any stage decodes; a larger one, or a "decompression bomb", is refused
# with one line before its pixels are allocated. Change it with the environment variable of this name.
MAX_IMAGE_PIXELS_VARIABLE = "FSMI_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000  # 8000 x 8000


def max_image_pixels() -> int:
    """The pixel limit: ``$FSMI_MAX_IMAGE_PIXELS`` if set, else ``DEFAULT_MAX_IMAGE_PIXELS``."""
    text = os.environ.get(MAX_IMAGE_PIXELS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise BadInputError(f"{MAX_IMAGE_PIXELS_VARIABLE}={text!r}: expected a positive whole number of pixels")
    return int(text)


def check_image_size(width: int, height: int, what: str) -> None:
    """Refuse an image of ``width`` x ``height`` above the pixel limit, before anything is allocated."""
    limit = max_image_pixels()
    if int(width) * int(height) > limit:
        raise BadInputError(f"{what} is {width}x{height} = {int(width) * int(height)} pixels, above the limit of "
                            f"{limit} (set {MAX_IMAGE_PIXELS_VARIABLE} to change it)")


_PATH_PART = re.compile(PATH_PART_PATTERN)


def check_path_part(value, what: str) -> str:
    """``value`` if it is a safe single path part (``schema.PATH_PART_PATTERN``, matched whole), else one line."""
    if not isinstance(value, str) or not _PATH_PART.fullmatch(value):
        raise BadInputError(f"{what} {value!r} must be 1 to 128 letters, digits, '_', '.' or '-', starting with a "
                            "letter or digit (it becomes part of a file path)")
    return value


def path_inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` (absolute, or relative to ``root``) if it resolves inside ``root``; refuses anything else.

    Every write or delete under a folder the user gave goes through this, so that no name read from a
    file can make a stage touch anything outside that folder.
    """
    root = Path(root).resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise BadInputError(f"{path} would lie outside the folder {root}; refusing to write or delete it")
    return resolved


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        # mkstemp makes the file 0600; give it the mode any other new file would get.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.errno and error.filename is None:
            # a failed write (a full disk) names no file; say which one it was
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image or a bool mask (stored as 0/255 grayscale)."""
    from PIL import Image

    if array.dtype == bool:
        image = Image.fromarray(array.astype(np.uint8) * 255, mode="L")
    elif array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        image = Image.fromarray(array, mode="RGB")
    elif array.dtype == np.uint8 and array.ndim == 2:
        image = Image.fromarray(array, mode="L")
    else:
        raise ValueError(f"cannot encode array of dtype {array.dtype} and shape {array.shape} as PNG")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def save_png(path: str | os.PathLike, array: np.ndarray) -> str:
    """Atomically write ``array`` as PNG; returns the sha256 of the written bytes."""
    data = encode_png(array)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def _open_image(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"image not found: {path}")
    return decode_image(path, f"image {path}", f"cannot read image {path}")


def decode_image(source, what: str, failure: str):
    """``source`` (a path or a file object) opened and decoded, its size checked against the pixel limit
    before any pixel is decoded; ``what`` names it in the limit's message, and ``failure`` starts the one
    line raised when it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(source)
        check_image_size(*image.size, what)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInputError(f"{failure}: {error}") from None
    return image


def image_size_within_limit(image, what: str) -> None:
    """For an already opened PIL image (from a dataset or a stream): refuse it above the pixel limit."""
    check_image_size(*image.size, what)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Load an image as RGB uint8 (H, W, 3). Grayscale and palette images are converted."""
    return pil_to_rgb(_open_image(path))


def pil_to_rgb(image) -> np.ndarray:
    """A PIL image as RGB uint8 (H, W, 3); 16-bit and float grayscale are scaled to 0..255."""
    if image.mode in ("I;16", "I", "F"):
        array = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = 65535.0 if array.max() > 255 else 255.0
        array = np.clip(np.round(array / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Load a mask image as bool (H, W): any non-zero pixel (of any channel) is True."""
    return pil_to_mask(_open_image(path))


def pil_to_mask(image) -> np.ndarray:
    """A PIL image as a bool mask: any non-zero pixel (palette index or channel) is True."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].max(axis=2) if array.shape[2] >= 3 else array[..., 0]
    return array > 0


# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): the only way text read from a UTF-8 file can hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def refuse_lone_surrogates(value, where: str, text: str | None = None) -> None:
    """One ``BadInputError`` if ``value`` (parsed JSON) holds text with an unpaired surrogate (``"\ud800"`` alone):
    no file, table or dataset can store it. ``text``: the JSON it was parsed from, to skip the check when it
    has no surrogate escape at all (a pair, as emoji are written, is fine)."""
    if text is not None and not _SURROGATE_ESCAPE.search(text):
        return
    try:
        # default: objects a parse hook made (arrays of polygon points) hold no text.
        json.dumps(value, ensure_ascii=False, default=lambda _: None).encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadInputError(f"{where}: text holds an unpaired surrogate ({error.object[error.start:error.end]!r}), "
                            "which is not Unicode; write the character itself or its full pair") from None


def write_jsonl(path: str | os.PathLike, rows) -> str:
    """Atomically write JSON lines (sorted keys, so output is byte-stable); returns sha256."""
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    data = text.encode("utf-8")
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path} is not UTF-8 text (byte {error.start})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
            refuse_lone_surrogates(rows[-1], f"{path}:{number}", line)
        except RecursionError:
            raise BadInputError(f"{path}:{number}: JSON nested too deeply") from None
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    return rows


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-", delete=True)
        probe.close()
    except OSError as error:
        raise BadInputError(f"cannot write to output folder {path}: {error.strerror or error}") from None
    return path


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike, what: str, wait_s: float):
    """Hold an exclusive lock on ``lock_path`` (an OS file lock, released when the process dies).

    A second process waits up to ``wait_s`` seconds (0 = not at all), then gets ``BadInputError`` naming
    the process that holds the lock (its pid, host and command, kept in ``<lock>.holder`` while held).
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    holder_path = lock_path.with_name(lock_path.name + ".holder")
    lock = FileLock(str(lock_path), timeout=wait_s)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = holder_path.read_text(encoding="utf-8").strip()[:300] or "unknown process"
        except (OSError, UnicodeDecodeError):
            holder = "unknown process"
        waited = f" after waiting {wait_s:g} s" if wait_s else ""
        raise BadInputError(f"{what} is in use by another fsmi process ({holder}){waited}; let it finish, "
                            "or use another folder") from None
    except OSError as error:
        raise BadInputError(f"cannot lock {what} ({lock_path}): {error.strerror or error}") from None
    try:
        command = " ".join(os.path.basename(part) if index == 0 else part
                           for index, part in enumerate(sys.argv))[:200]
        try:
            atomic_write_text(holder_path, f"pid {os.getpid()} on {socket.gethostname()}: {command}")
        except OSError:
            pass  # the lock holds without its label
        yield
    finally:
        try:
            holder_path.unlink()
        except OSError:
            pass
        lock.release()
