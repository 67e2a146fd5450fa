"""One file over HTTP(S), checked before it takes its name: what ``fsmi weights fetch`` downloads with.

Bytes arrive in ``<final>.incomplete``; an interrupted download resumes from there (HTTP Range); a file
that fails its check (``Expected``) is deleted, never left under its final name. What a server may send is
bounded: a file's size is capped (its pinned size, else a stated maximum), a body that ends before its
``Content-Length`` is asked for again at once, and a server that still sends nothing more has stated more
bytes than it has (nothing is kept); every ``READ_WINDOW_S`` seconds must bring ``MIN_WINDOW_BYTES`` (a
stalled or dripping server is stopped, what arrived is kept for the next call to resume).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import FsmiError, IntegrityError
from fsmi_bench.io import sha256_file

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
# The largest file fetched when its target pins no size and states no maximum of its own.
DEFAULT_MAX_BYTES = 4 << 30
# The read deadline: each window of READ_WINDOW_S seconds must bring at least MIN_WINDOW_BYTES (about 2 KiB/s).
READ_WINDOW_S = 30.0
MIN_WINDOW_BYTES = 64 << 10
# Requests made in one call for one file whose body keeps ending before its Content-Length.
ATTEMPTS = 3


class DownloadError(FsmiError):
    """A download that could not be made (offline, server error); partial bytes are kept for resuming."""


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must be: its hash (``sha256`` in full, a ``sha256_prefix``, or a git blob ``sha1``),
    and its ``size`` in bytes when pinned, else at most ``max_bytes``."""

    sha256: str | None = None
    sha256_prefix: str | None = None
    git_sha1: str | None = None
    size: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def limit(self) -> int:
        """The most bytes the file may have."""
        return self.size if self.size is not None else self.max_bytes

    def check_length(self, length: int, url: str) -> None:
        """Refuse a stated or reached length that the file cannot have (checked before and while reading)."""
        if self.size is not None and length != self.size:
            raise IntegrityError(f"{url}: the server states {length} bytes, fsmi pins {self.size}; refused, "
                                 "nothing kept")
        if length > self.limit:
            raise IntegrityError(f"{url}: {length} bytes, more than the {self.limit} fsmi allows for this file; "
                                 "refused, nothing kept")

    def check(self, sha256: str, git_sha1: str, url: str) -> None:
        if self.sha256 and sha256 != self.sha256:
            raise IntegrityError(f"{url}: sha256 {sha256} is not the stated {self.sha256}; the file was deleted")
        if self.sha256_prefix and not sha256.startswith(self.sha256_prefix):
            raise IntegrityError(f"{url}: sha256 {sha256} does not start with {self.sha256_prefix} as its name "
                                 "states; the file was deleted")
        if self.git_sha1 and git_sha1 != self.git_sha1:
            raise IntegrityError(f"{url}: git blob sha1 {git_sha1} is not the stated {self.git_sha1}; "
                                 "the file was deleted")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The hub states a file's hash and commit on the first answer, before redirecting to its storage.
    def redirect_request(self, *args, **kwargs):
        return None


def _head(url: str) -> dict[str, str]:
    """The headers of a HEAD request to ``url`` itself (redirects not followed), lower-cased keys."""
    request = urllib.request.Request(url, method="HEAD", headers={"Accept-Encoding": "identity"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return {key.lower(): value for key, value in response.headers.items()}
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            return {key.lower(): value for key, value in error.headers.items()}
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {url} ({getattr(error, 'reason', error)}); are you offline?") from None


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: Path, expected: Expected, progress: bool = True) -> str:
    """Download ``url`` to ``destination`` through ``destination.incomplete`` (resumed if present), check
    it against ``expected``, then rename it into place. Returns its sha256.

    A failed check, a size the file cannot have, or a server that states more bytes than it sends deletes the
    partial file (``IntegrityError``); a broken or stalled connection keeps it for the next call to resume
    (``DownloadError``).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".incomplete")
    if partial.is_file() and partial.stat().st_size > expected.limit:
        partial.unlink()  # longer than the file can be: not the start of it
    reached = -1
    try:
        for _ in range(ATTEMPTS):
            if _fetch_into(url, partial, expected, progress):
                break
            size = partial.stat().st_size
            if size <= reached:  # asked again from where it stopped, and nothing more came
                raise IntegrityError(f"{url}: the server states more bytes than it sends (it stops at {size}); "
                                     "nothing kept")
            reached = size
        else:
            raise DownloadError(f"{url}: the connection ended before the file did {ATTEMPTS} times (at {reached} "
                                "bytes); run the same command again to resume")
        sha256 = sha256_file(partial)
        expected.check(sha256, _git_blob_sha1(partial) if expected.git_sha1 else "", url)
    except IntegrityError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, destination)
    return sha256


def _fetch_into(url: str, partial: Path, expected: Expected, progress: bool) -> bool:
    """One request for ``url``, from the end of ``partial`` if it exists; True when the file is whole (as long
    as the server said, or a 416 for a partial file already whole), False when the body ended early."""
    from tqdm import tqdm

    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=min(TIMEOUT_S, READ_WINDOW_S))
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # asked past the end: the partial file is already whole
            return True
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {url} ({getattr(error, 'reason', error)}); are you offline?") from None
    with response:
        content_range = response.headers.get("Content-Range") or ""
        resumed = bool(start) and response.status == 206 and content_range.startswith(f"bytes {start}-")
        if not resumed:
            start = 0  # the server sent the whole file: start again
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if total is not None:
            expected.check_length(total, url)
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=partial.name.removesuffix(".incomplete"), file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        try:
            with open(partial, "ab" if resumed else "wb") as handle:
                _copy(response, handle, start, expected, url, bar.update)
        except (OSError, urllib.error.URLError) as error:
            size = partial.stat().st_size if partial.is_file() else 0
            raise DownloadError(f"{url}: download broke off after {size} bytes ({error}); "
                                "run the same command again to resume") from None
        finally:
            bar.close()
    return total is None or partial.stat().st_size == total


def _copy(response, handle, written: int, expected: Expected, url: str, advance) -> None:
    """Copy the body into ``handle`` as it arrives, within the file's size limit and the read deadline."""
    window_start, window_bytes = time.monotonic(), 0
    while chunk := response.read1(CHUNK_BYTES):
        written += len(chunk)
        if written > expected.limit:
            raise IntegrityError(f"{url}: the body runs past {expected.limit} bytes, the most this file may have; "
                                 "stopped, nothing kept")
        handle.write(chunk)
        advance(len(chunk))
        window_bytes += len(chunk)
        now = time.monotonic()
        if now - window_start >= READ_WINDOW_S:
            if window_bytes < MIN_WINDOW_BYTES:
                raise DownloadError(f"{url}: {window_bytes} bytes in the last {now - window_start:.0f} s, below "
                                    f"{MIN_WINDOW_BYTES} per {READ_WINDOW_S:g} s; stopped after {written} bytes, "
                                    "run the same command again to resume")
            window_start, window_bytes = now, 0
