"""Fetching the metric weights, only when asked (``fsmi weights fetch``); nothing else ever downloads.

Files go where ``fsmi_bench.metrics.weights`` looks for them, in the layouts their libraries write:
- Hugging Face repositories into the hub cache (``blobs/<etag>``, ``snapshots/<commit>/<file>`` linking to
  the blob, ``refs/<revision>``), from ``$HF_ENDPOINT`` (default https://huggingface.co);
- torchvision checkpoints into ``$TORCH_HOME/hub/checkpoints``, from torchvision's own URLs
  (``$FSMI_TORCHVISION_URL`` replaces https://download.pytorch.org/models, for mirrors).

Every file is checked before it takes its final name:
- a Hugging Face file of a pinned repository (``HubFiles.pinned``) against the sha256 recorded here, at the
  commit recorded here: a hub that states another commit or another hash is refused;
- any other Hugging Face file against what the hub states for it: the LFS sha256 (header ``X-Linked-Etag``)
  for large files, the git blob sha1 (``ETag``) for small ones;
- a torchvision file against the sha256 prefix its name carries (``alexnet-owt-7be5be79.pth``), as
  ``torch.hub`` checks it;
- every file against its size: pinned here (``HubFiles.sizes``), else at most a stated maximum (``max_bytes``);
- and every file against the sha256 recorded at its first download (``$FSMI_CACHE_DIR/weights-fetched.json``,
  with the repository commit and where its sha256 came from: ``pinned`` in fsmi, stated by the ``hub``, or
  computed at the ``first download``), so later fetches stay on that commit and that content.
Bytes arrive in ``<final>.incomplete``; an interrupted download resumes from there (HTTP Range); a file
that fails its check is deleted, never left under its final name (``http_download``). A blob of the hub cache
is named only by a hex digest: the sha256 or git sha1 the hub states (checked to be one) or the pinned sha256.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fsmi_bench.errors import IntegrityError
from fsmi_bench.io import atomic_write_text, sha256_file
from fsmi_bench.metrics.http_download import (
    DEFAULT_MAX_BYTES,
    DownloadError,
    Expected,
    _git_blob_sha1,
    _head,
    download,
)
from fsmi_bench.metrics.weights import _hf_cache_root, _torch_cache_root
from fsmi_bench.provenance import fsmi_cache_dir

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_TORCHVISION_URL = "https://download.pytorch.org/models"
RECORD_FILE = "weights-fetched.json"
# The configuration and tokenizer files of a model repository are kilobytes to a few megabytes.
SMALL_FILE_MAX_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hugging Face model repository.

    revision: the branch or commit asked for the first time; after that, the commit recorded at the first
    download. pinned: (file name, sha256) of files pinned in fsmi, with ``revision`` the commit they are
    from; a pinned file is fetched from that commit only and must have that sha256. sizes: (file name, bytes)
    of files whose size is pinned; any other file may have at most ``max_bytes``.
    """

    repo_id: str
    files: tuple[str, ...]
    revision: str = "main"
    pinned: tuple[tuple[str, str], ...] = ()
    sizes: tuple[tuple[str, int], ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES

    def pinned_sha256(self, filename: str) -> str | None:
        return dict(self.pinned).get(filename)

    def expected(self, filename: str, **hashes) -> Expected:
        """What ``filename`` must be: the given hashes, and its pinned size or at most ``max_bytes``."""
        return Expected(**hashes, size=dict(self.sizes).get(filename), max_bytes=self.max_bytes)


@dataclass(frozen=True)
class TorchvisionFile:
    """A torchvision checkpoint; its name's ``-<hex>.`` part is the start of its sha256 (torch.hub's rule);
    ``max_bytes``: the most it may have."""

    filename: str
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class FetchTarget:
    """What ``fsmi weights fetch NAME`` downloads for the weight NAME of ``weights.REQUIREMENTS``."""

    name: str
    source: HubFiles | TorchvisionFile


# The official locations, as the libraries name them: open_clip's pretrained table gives
# hf_hub="timm/vit_large_patch14_clip_224.openai/" for ViT-L-14 "openai"; transformers' DINOv2-S is
# facebook/dinov2-small; torchvision's AlexNet and SqueezeNet 1.1 weights enums give the file names.
#
# Pins: a commit and each file's sha256, as public code that pins these repositories cites them (fsmi's build
# machines cannot reach the hub to read them there; a hub that disagrees is refused, never believed).
# - timm/vit_large_patch14_clip_224.openai at 18d0535469bb561bf468d76c1d73aa35156c922b: cited in hub-cache
#   paths "models--timm--vit_large_patch14_clip_224.openai/snapshots/18d0535.../open_clip_model.safetensors"
#   beside "blobs/9ce2e8a8ebff...207e" (the hub names an LFS blob by its sha256), and as the sha256 of
#   open_clip_model.safetensors (1,710,517,724 bytes, snapshot 18d05354) in public model tables.
# - facebook/dinov2-small at ed25f3a31f01632728cabb09d1542f84ab7b0056: the revision that mteb lists for it
#   (embeddings-benchmark/mteb, docs/overview/available_models/image.md); public pin tables give, at that
#   commit, model.safetensors 88,249,960 bytes sha256 ae1e99fc...4be1 (its LFS sha256) and config.json
#   547 bytes sha256 1809f83e...628d (git blob sha1 5664b325e6258d3960fad8c4c1cff958f3cc2272).
# - openai/clip-vit-large-patch14 at 32bd64288804d66eefd0ccbe215aa642df71cc41: the revision public code pins
#   it at, with these sha256 (model.safetensors 1,710,540,580 bytes, its LFS sha256), in pin tables of the
#   revision's files ("CLIP_REVISION = 32bd6428..." beside "CLIP_REQUIRED_FILES_SHA256") and SHA256SUMS lists
#   of the same folder (which add preprocessor_config.json and special_tokens_map.json).
# Sizes: those the same tables give beside the sha256 (config.json 4,519 and tokenizer.json 2,224,003 bytes of
# clip-vit-large-patch14); its other small files are capped at SMALL_FILE_MAX_BYTES. torchvision publishes
# AlexNet's file as 233.1 MB and SqueezeNet 1.1's as 4.7 MB: capped at 256 MiB and 16 MiB.
CLIP_VIT_L_14_HF_COMMIT = "32bd64288804d66eefd0ccbe215aa642df71cc41"
CLIP_VIT_L_14_COMMIT = "18d0535469bb561bf468d76c1d73aa35156c922b"
DINOV2_SMALL_COMMIT = "ed25f3a31f01632728cabb09d1542f84ab7b0056"
FETCH_TARGETS: dict[str, FetchTarget] = {
    "clip-vit-l-14-hf": FetchTarget("clip-vit-l-14-hf", HubFiles(
        "openai/clip-vit-large-patch14",
        ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.json", "merges.txt"), revision=CLIP_VIT_L_14_HF_COMMIT,
        pinned=(("config.json", "8a09b467700c58138c29d53c605b34ebc69beaadd13274a8a2af8ad2c2f4032a"),
                ("model.safetensors", "a2bf730a0c7debf160f7a6b50b3aaf3703e7e88ac73de7a314903141db026dcb"),
                ("preprocessor_config.json", "910e70b3956ac9879ebc90b22fb3bc8a75b6a0677814500101a4c072bd7857bd"),
                ("tokenizer.json", "a83e0809aa4c3af7208b2df632a7a69668c6d48775b3c3fe4e1b1199d1f8b8f4"),
                ("tokenizer_config.json", "deef455e52fa5e8151e339add0582e4235f066009601360999d3a9cda83b1129"),
                ("special_tokens_map.json", "f8c0d6c39aee3f8431078ef6646567b0aba7f2246e9c54b8b99d55c22b707cbf"),
                ("vocab.json", "3f0c4f7d2086b61b38487075278ea9ed04edb53a03cbb045b86c27190fa8fb69"),
                ("merges.txt", "9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a")),
        sizes=(("config.json", 4519), ("model.safetensors", 1710540580), ("tokenizer.json", 2224003)),
        max_bytes=SMALL_FILE_MAX_BYTES)),
    "clip-vit-l-14": FetchTarget("clip-vit-l-14", HubFiles(
        "timm/vit_large_patch14_clip_224.openai", ("open_clip_model.safetensors",), revision=CLIP_VIT_L_14_COMMIT,
        pinned=(("open_clip_model.safetensors", "9ce2e8a8ebfff3793d7d375ad6d3c35cb9aebf3de7ace0fc7308accab7cd207e"),),
        sizes=(("open_clip_model.safetensors", 1710517724),))),
    "dinov2-small": FetchTarget("dinov2-small", HubFiles(
        "facebook/dinov2-small", ("config.json", "model.safetensors"), revision=DINOV2_SMALL_COMMIT,
        pinned=(("config.json", "1809f83e3bdb1609a501a610ad4a742f4fd8ae44d72ca4aa0df52d1f2ac8628d"),
                ("model.safetensors", "ae1e99fcefd534ed978cdeb8326f08030c96e28b7a81ffcbc98a857c84d14be1")),
        sizes=(("config.json", 547), ("model.safetensors", 88249960)))),
    "alexnet-imagenet": FetchTarget("alexnet-imagenet", TorchvisionFile("alexnet-owt-7be5be79.pth", 256 << 20)),
    "squeezenet-imagenet": FetchTarget("squeezenet-imagenet", TorchvisionFile("squeezenet1_1-b8a52dc0.pth", 16 << 20)),
}


@dataclass(frozen=True)
class FetchedFile:
    """One file on disk after a fetch: where, its sha256, and whether it was downloaded now."""

    name: str
    path: Path
    sha256: str
    url: str
    revision: str | None
    downloaded: bool


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def torchvision_url() -> str:
    return (os.environ.get("FSMI_TORCHVISION_URL") or DEFAULT_TORCHVISION_URL).rstrip("/")


def _record_path() -> Path:
    return fsmi_cache_dir() / RECORD_FILE


def load_fetch_record() -> dict:
    """``{url or hub key: {"sha256", "revision", "fetched_at"}}`` of every file fetched before; a file that is
    not such a record is one ``DownloadError`` (its digests and commits decide what is fetched and trusted)."""
    path = _record_path()
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise DownloadError(f"cannot read {path}: {error}; delete it to start the record again") from None
    if not isinstance(record, dict):
        raise DownloadError(f"{path} holds a JSON {type(record).__name__}, not the record of fetched files (an "
                            "object); delete it to start the record again")
    for key, entry in record.items():
        sound = isinstance(entry, dict) and all(isinstance(entry.get(field), str) or entry.get(field) is None
                                                for field in ("sha256_source", "url", "fetched_at"))
        if sound and entry.get("sha256") is not None:
            sound = isinstance(entry["sha256"], str) and bool(_SHA256.fullmatch(entry["sha256"]))
        if sound and entry.get("revision") is not None:
            sound = isinstance(entry["revision"], str) and bool(_GIT_SHA1.fullmatch(entry["revision"]))
        if not sound:
            raise DownloadError(f"{path}: the entry {str(key)[:80]!r} is not a fetched file's record (sha256, "
                                "commit); delete the file to start the record again")
    return record


def _save_fetch_record(record: dict) -> None:
    atomic_write_text(_record_path(), json.dumps(record, indent=2, sort_keys=True))


def _link(link: Path, blob: Path) -> None:
    """``link`` -> ``blob`` as the hub cache does (a relative symlink), or a copy where links are refused;
    made under a temporary name, then renamed into place."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.link")
    temporary.unlink(missing_ok=True)
    try:
        temporary.symlink_to(os.path.relpath(blob, link.parent))
    except OSError:
        import shutil

        shutil.copyfile(blob, temporary)
    os.replace(temporary, link)


# Where a file's sha256 came from, as weights-fetched.json records it (``sha256_source``).
PINNED, STATED_BY_HUB, FIRST_DOWNLOAD = "pinned", "hub", "first download"


def _etag_text(value: str | None) -> str:
    return (value or "").strip().removeprefix("W/").strip('"')


def _stated_digests(url: str, headers: dict[str, str]) -> tuple[str, str]:
    """(LFS sha256, git blob sha1) as the hub states them in ``X-Linked-Etag`` and ``ETag``, "" where not
    stated. A stated LFS sha256 that is not 64 hex digits is refused; an ETag that is not a git sha1 (an LFS
    redirect's, a server's own) states no git sha1."""
    lfs_sha256, etag = _etag_text(headers.get("x-linked-etag")), _etag_text(headers.get("etag"))
    if lfs_sha256 and not _SHA256.fullmatch(lfs_sha256):
        raise IntegrityError(f"{url}: the server states X-Linked-Etag {lfs_sha256[:80]!r}, not a sha256; refused")
    return lfs_sha256, etag if _GIT_SHA1.fullmatch(etag) else ""


def fetch_hub_files(name: str, source: HubFiles, record: dict, progress: bool = True) -> list[FetchedFile]:
    """Download a repository's files into the Hugging Face hub cache (skipping those already there)."""
    endpoint, hub_root = hf_endpoint(), _hf_cache_root()
    repo_folder = hub_root / f"models--{source.repo_id.replace('/', '--')}"
    fetched = []
    for filename in source.files:
        key = f"hf:{source.repo_id}/{filename}"
        known = record.get(key, {})
        pinned = source.pinned_sha256(filename)
        # A pinned file comes from the pinned commit, whatever an earlier, unpinned fetch recorded.
        revision = source.revision if pinned else (known.get("revision") or source.revision)
        url = f"{endpoint}/{source.repo_id}/resolve/{revision}/{filename}"
        headers = _head(url)
        commit = headers.get("x-repo-commit") or revision
        lfs_sha256, git_sha1 = _stated_digests(url, headers)
        if not _GIT_SHA1.fullmatch(commit):
            raise DownloadError(f"{url}: the server did not state the commit (X-Repo-Commit); not a hub endpoint?")
        if pinned:
            if commit != revision:
                raise IntegrityError(f"{url}: the hub answers with commit {commit}, fsmi pins {revision}; refused")
            if lfs_sha256 and lfs_sha256 != pinned:
                raise IntegrityError(f"{url}: the hub states sha256 {lfs_sha256}, fsmi pins {pinned}; refused")
            expected, origin = source.expected(filename, sha256=pinned), PINNED
        elif lfs_sha256:
            expected, origin = source.expected(filename, sha256=lfs_sha256), STATED_BY_HUB
        elif git_sha1:
            expected, origin = source.expected(filename, git_sha1=git_sha1), FIRST_DOWNLOAD
        else:
            raise DownloadError(f"{url}: the server stated no hash for the file (X-Linked-Etag or ETag)")
        if not pinned and known.get("sha256") and lfs_sha256 and lfs_sha256 != known["sha256"]:
            raise IntegrityError(f"{url}: the hub now states sha256 {lfs_sha256}, the first download had "
                                 f"{known['sha256']}; refusing to replace it")
        if not pinned and known.get("sha256") and not lfs_sha256:
            expected = source.expected(filename, sha256=known["sha256"], git_sha1=expected.git_sha1)
        # Only a hex digest names a blob (the hub's own layout): never a header's text as it came.
        blob = repo_folder / "blobs" / (lfs_sha256 or git_sha1 or pinned)
        snapshot_file = repo_folder / "snapshots" / commit / filename
        downloaded = False
        if blob.is_file():
            sha256 = sha256_file(blob)
            expected.check(sha256, _git_blob_sha1(blob) if expected.git_sha1 else "", url)
        else:
            sha256 = download(url, blob, expected, progress)
            downloaded = True
        _link(snapshot_file, blob)
        if not _GIT_SHA1.fullmatch(revision):
            atomic_write_text(repo_folder / "refs" / revision, commit)
        if origin == FIRST_DOWNLOAD and known.get("sha256") == sha256:
            origin = known.get("sha256_source", FIRST_DOWNLOAD)  # the same file: its first record stands
        record[key] = {"sha256": sha256, "sha256_source": origin, "revision": commit, "url": url,
                       "fetched_at": known.get("fetched_at") or _now()}
        fetched.append(FetchedFile(name, snapshot_file, sha256, url, commit, downloaded))
    return fetched


def fetch_torchvision_file(name: str, source: TorchvisionFile, record: dict, progress: bool = True) -> FetchedFile:
    """Download a torchvision checkpoint into torch's hub cache (skipped if already there and sound)."""
    url = f"{torchvision_url()}/{source.filename}"
    prefix = re.search(r"-([a-f0-9]+)\.", source.filename)
    key = f"torchvision:{source.filename}"
    known = record.get(key, {})
    expected = Expected(sha256=known.get("sha256"), sha256_prefix=prefix.group(1) if prefix else None,
                        max_bytes=source.max_bytes)
    destination = _torch_cache_root() / source.filename
    downloaded = False
    if destination.is_file():
        sha256 = sha256_file(destination)
        expected.check(sha256, "", str(destination))
    else:
        sha256 = download(url, destination, expected, progress)
        downloaded = True
    # The name carries only the start of the sha256: the whole of it is what the first download had.
    record[key] = {"sha256": sha256, "sha256_source": FIRST_DOWNLOAD, "revision": None, "url": url,
                   "fetched_at": known.get("fetched_at") or _now()}
    return FetchedFile(name, destination, sha256, url, None, downloaded)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_fetch_names(names) -> tuple[str, ...]:
    """The names to fetch (all of ``FETCH_TARGETS`` for none); an unknown name is a one-line error."""
    import difflib

    from fsmi_bench.errors import BadInputError

    for name in names:
        if name not in FETCH_TARGETS:
            close = difflib.get_close_matches(name, list(FETCH_TARGETS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shipped = " (shipped with the lpips package, nothing to fetch)" if name.startswith("lpips") else ""
            raise BadInputError(f"cannot fetch {name!r}{shipped}{hint} (fetchable: {', '.join(FETCH_TARGETS)})")
    return tuple(names) or tuple(FETCH_TARGETS)


def fetch_weights(names=(), progress: bool = True) -> list[FetchedFile]:
    """Fetch the named metric weights (all for none) into the caches ``fsmi score`` and ``fsmi doctor`` read."""
    record = load_fetch_record()
    fetched: list[FetchedFile] = []
    try:
        for name in check_fetch_names(names):
            source = FETCH_TARGETS[name].source
            if isinstance(source, HubFiles):
                fetched.extend(fetch_hub_files(name, source, record, progress))
            else:
                fetched.append(fetch_torchvision_file(name, source, record, progress))
    finally:
        _save_fetch_record(record)  # what was fetched before a failure stays recorded
    return fetched


PUBLISHERS_SHA256 = "publisher's sha256"
RECORDED_AT_FIRST_DOWNLOAD = "recorded at first download"


def digest_origin(name: str, path: Path) -> str:
    """Where the digest of weight ``name``, found at ``path`` (a file or a model folder), can be checked
    against, as ``fsmi doctor`` prints it beside the digest:

    - ``PUBLISHERS_SHA256``: every file fsmi fetches for it has the sha256 pinned in ``FETCH_TARGETS`` or
      the one the hub stated when it was fetched;
    - ``RECORDED_AT_FIRST_DOWNLOAD``: ``fsmi weights fetch`` downloaded it, but nothing published states its
      whole sha256 (a torchvision file's name carries only its start; a small hub file has a git sha1): the
      digest is the one computed then, and later fetches are held to it;
    - ``""``: neither (a file fsmi did not fetch, whose content it cannot vouch for).
    """
    from fsmi_bench.provenance import weights_sha256

    target = FETCH_TARGETS.get(name)
    if target is None or path is None:
        return ""
    source = target.source
    filenames = source.files if isinstance(source, HubFiles) else (source.filename,)
    files = {filename: (path / filename if path.is_dir() else path) for filename in filenames}
    if not path.is_dir():  # a file weight: the one of the target's files that it is
        files = {filename: path for filename in filenames if filename == path.name} or {filenames[-1]: path}
    if not all(file.is_file() for file in files.values()):
        return ""
    digests = {filename: weights_sha256(file) for filename, file in files.items()}
    if isinstance(source, HubFiles) and source.pinned and all(
            source.pinned_sha256(filename) == digest for filename, digest in digests.items()):
        return PUBLISHERS_SHA256
    try:
        record = load_fetch_record()
    except DownloadError:
        return ""
    origins = []
    for filename, digest in digests.items():
        key = f"hf:{source.repo_id}/{filename}" if isinstance(source, HubFiles) else f"torchvision:{filename}"
        known = record.get(key) or {}
        if known.get("sha256") != digest:
            return ""
        origins.append(known.get("sha256_source", FIRST_DOWNLOAD))  # older records did not say: assume the least
    if all(origin in (PINNED, STATED_BY_HUB) for origin in origins):
        return PUBLISHERS_SHA256
    return RECORDED_AT_FIRST_DOWNLOAD
