"""One file over HTTP(S), checked before it takes its name: what ``fsmi weights fetch`` downloads with.

Bytes arrive in ``<final>.incomplete``; an interrupted download resumes from there (HTTP Range); a file
that fails its check (``Expected``) is deleted, never left under its final name.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import FsmiError, IntegrityError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60


class DownloadError(FsmiError):
    """A download that could not be made (offline, server error); partial bytes are kept for resuming."""


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must hash to: ``sha256`` in full, a ``sha256_prefix``, or a git blob ``sha1``."""

    sha256: str | None = None
    sha256_prefix: str | None = None
    git_sha1: str | None = None

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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: Path, expected: Expected, progress: bool = True) -> str:
    """Download ``url`` to ``destination`` through ``destination.incomplete`` (resumed if present), check
    it against ``expected``, then rename it into place. Returns its sha256.

    A failed check deletes the partial file (``IntegrityError``); a broken connection keeps it for the
    next call to resume (``DownloadError``).
    """
    from tqdm import tqdm

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".incomplete")
    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # asked past the end: the partial file is already whole
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {url} ({getattr(error, 'reason', error)}); are you offline?") from None
    if response is not None:
        with response:
            resumed = start and response.status == 206
            if not resumed:
                start = 0  # the server sent the whole file: start again
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=destination.name, file=sys.stderr, disable=not progress, dynamic_ncols=True)
            try:
                with open(partial, "ab" if resumed else "wb") as handle:
                    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                        handle.write(chunk)
                        bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as error:
                raise DownloadError(f"{url}: download broke off after {partial.stat().st_size} bytes ({error}); "
                                    "run the same command again to resume") from None
            finally:
                bar.close()
            if total is not None and partial.stat().st_size != total:
                raise DownloadError(f"{url}: got {partial.stat().st_size} of {total} bytes; "
                                    "run the same command again to resume")
    sha256 = _sha256(partial)
    try:
        expected.check(sha256, _git_blob_sha1(partial) if expected.git_sha1 else "", url)
    except IntegrityError:
        partial.unlink()
        raise
    os.replace(partial, destination)
    return sha256
