"""`fsmi weights fetch` against a hostile server on 127.0.0.1: header values that try to name files outside the
cache, bodies longer or shorter than stated, endless or dripping bodies, and a damaged fetch record. Each ends
with the file fetched, or one error and nothing kept outside (or, for a lie, inside) the cache."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmi_bench.cli import main
from fsmi_bench.errors import FsmiError, IntegrityError
from fsmi_bench.metrics import http_download
from fsmi_bench.metrics.download import (
    FETCH_TARGETS,
    DownloadError,
    FetchTarget,
    HubFiles,
    TorchvisionFile,
    fetch_weights,
)
from fsmi_bench.metrics.weights import resolve
from tests.support.hub_server import COMMIT, files_under, pin

CLIP_REPO = "timm/vit_large_patch14_clip_224.openai"
CLIP_BLOBS = f"hf/hub/models--{CLIP_REPO.replace('/', '--')}/blobs"


def _everything_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() or path.is_symlink()]


def _only_cache_files(tmp_path: Path) -> None:
    """Every file written lies in the hub cache, the torch cache or fsmi's own cache; every blob is named by a
    hex digest (or is a partial download of one)."""
    for path in _everything_under(tmp_path):
        relative = path.relative_to(tmp_path)
        assert relative.parts[0] in ("hf", "torch", "fsmi"), relative
        if "blobs" in relative.parts:
            name = path.name.removesuffix(".incomplete")
            assert len(name) in (40, 64) and all(c in "0123456789abcdef" for c in name), relative


@pytest.mark.parametrize("etag", ['"{abs}/abs/dir/evil"', '"../../../../x/evil"', 'W/"../../evil"', '"config.json"'])
def test_an_etag_that_is_no_digest_never_names_a_file(hub, tmp_path, monkeypatch, etag):
    """A pinned small file whose ETag is a path: fetched under its pinned sha256; unpinned: refused."""
    hub.etag["config.json"] = etag.format(abs=tmp_path)
    fetched = fetch_weights(["dinov2-small"], progress=False)
    assert [item.path.name for item in fetched] == ["config.json", "model.safetensors"]
    config_sha256 = hashlib.sha256(hub.repos["facebook/dinov2-small"]["config.json"]).hexdigest()
    blob = tmp_path / "hf/hub/models--facebook--dinov2-small/blobs" / config_sha256
    assert fetched[0].path.resolve() == blob and resolve("dinov2-small").present
    _only_cache_files(tmp_path)
    assert not (tmp_path / "abs").exists() and not (tmp_path / "x").exists()

    shutil.rmtree(tmp_path / "hf")
    pin(monkeypatch, hub, "dinov2-small", pinned=False)
    with pytest.raises(DownloadError, match="stated no hash"):
        fetch_weights(["dinov2-small"], progress=False)
    _only_cache_files(tmp_path)
    assert not resolve("dinov2-small").present


@pytest.mark.parametrize("stated", ["../../evil", "/tmp/evil", "9ce2e8a8" + "g" * 56, "0" * 63])
def test_a_linked_etag_that_is_no_sha256_is_refused(hub, tmp_path, monkeypatch, stated):
    pin(monkeypatch, hub, "clip-vit-l-14", pinned=False)
    hub.stated_sha256["open_clip_model.safetensors"] = stated
    with pytest.raises(IntegrityError, match="not a sha256; refused"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    _only_cache_files(tmp_path)


def test_a_body_shorter_than_its_content_length_is_not_kept(hub, tmp_path):
    hub.extra_length = 5000  # every answer states 5000 bytes more than it sends
    with pytest.raises(IntegrityError, match="states more bytes than it sends"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []


def _clip_target(monkeypatch, hub, **limits) -> None:
    data = hub.repos[CLIP_REPO]["open_clip_model.safetensors"]
    files = HubFiles(CLIP_REPO, ("open_clip_model.safetensors",), revision=COMMIT,
                     pinned=(("open_clip_model.safetensors", hashlib.sha256(data).hexdigest()),), **limits)
    monkeypatch.setitem(FETCH_TARGETS, "clip-vit-l-14", FetchTarget("clip-vit-l-14", files))


def test_a_stated_size_above_the_cap_or_not_the_pinned_one_is_refused_before_any_byte(hub, tmp_path, monkeypatch):
    size = len(hub.repos[CLIP_REPO]["open_clip_model.safetensors"])
    _clip_target(monkeypatch, hub, max_bytes=size - 1)
    with pytest.raises(IntegrityError, match=f"{size} bytes, more than the {size - 1} fsmi allows"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    _clip_target(monkeypatch, hub, sizes=(("open_clip_model.safetensors", size + 1),))
    with pytest.raises(IntegrityError, match=f"states {size} bytes, fsmi pins {size + 1}"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    _clip_target(monkeypatch, hub, sizes=(("open_clip_model.safetensors", size),), max_bytes=1)
    (item,) = fetch_weights(["clip-vit-l-14"], progress=False)  # a pinned size is its own limit
    assert item.path.stat().st_size == size


def test_an_endless_body_stops_at_the_cap_and_is_not_kept(hub, tmp_path, monkeypatch):
    hub.endless = True  # no Content-Length, and bytes without end
    _clip_target(monkeypatch, hub, max_bytes=3 << 20)
    started = time.perf_counter()
    with pytest.raises(IntegrityError, match=f"runs past {3 << 20} bytes"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert time.perf_counter() - started < 30
    assert files_under(tmp_path / "hf") == []
    # A torchvision file has its cap too.
    hub.torchvision = {"tinynet-00000000.pth": b"x"}
    monkeypatch.setitem(FETCH_TARGETS, "squeezenet-imagenet",
                        FetchTarget("squeezenet-imagenet", TorchvisionFile("tinynet-00000000.pth", 1 << 20)))
    with pytest.raises(IntegrityError, match=f"runs past {1 << 20} bytes"):
        fetch_weights(["squeezenet-imagenet"], progress=False)
    assert files_under(tmp_path / "torch") == []


def test_a_dripping_server_is_stopped_by_the_read_deadline(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(http_download, "READ_WINDOW_S", 0.3)
    monkeypatch.setattr(http_download, "MIN_WINDOW_BYTES", 1000)
    hub.drip_s = 0.05  # 20 bytes a second
    started = time.perf_counter()
    with pytest.raises(DownloadError, match="below 1000 per 0.3 s; stopped after .* run the same command again"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert time.perf_counter() - started < 10
    (partial,) = (tmp_path / CLIP_BLOBS).iterdir()  # what arrived is kept for the next call
    assert partial.name.endswith(".incomplete") and 0 < partial.stat().st_size < 100
    result = CliRunner().invoke(main, ["weights", "fetch", "clip-vit-l-14", "--no-progress"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("content", [
    "[]", '"text"', "3", "null", '{"hf:a/b": 5}', '{"hf:a/b": []}', '{"hf:a/b": {"sha256": "../../evil"}}',
    '{"hf:a/b": {"sha256": ["x"]}}', '{"hf:facebook/dinov2-small/config.json": {"revision": "../../x"}}',
    '{"hf:a/b": {"url": 5}}', "[" * 100_000 + "]" * 100_000, "{", "\udcff"])
def test_a_damaged_fetch_record_is_one_line(hub, tmp_path, content):
    record = tmp_path / "fsmi" / "weights-fetched.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(content.encode("utf-8", "surrogateescape"))
    result = CliRunner().invoke(main, ["weights", "fetch", "dinov2-small", "--no-progress"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "weights-fetched.json" in result.output and "delete" in result.output
    assert files_under(tmp_path / "hf") == []
    doctor = CliRunner().invoke(main, ["doctor"])  # doctor claims nothing for the digests, and goes on
    assert doctor.exit_code == 0, doctor.output


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(etag=st.one_of(HEADER_TEXT, st.sampled_from(['"/x/evil"', '"../../e"', '"' + "a" * 40 + '"'])),
       linked=st.one_of(st.just(None), HEADER_TEXT, st.sampled_from(["../../e", "a" * 64])),
       commit=st.one_of(st.just(COMMIT), HEADER_TEXT), extra_length=st.sampled_from([0, 0, 1, 10**6]),
       pinned=st.booleans())
def test_fuzzed_hub_headers_fetch_or_refuse_and_write_only_blobs(hub, tmp_path, monkeypatch, etag, linked, commit,
                                                                 extra_length, pinned):
    for folder in ("hf", "fsmi"):
        shutil.rmtree(tmp_path / folder, ignore_errors=True)
    pin(monkeypatch, hub, "dinov2-small", pinned=pinned)
    hub.etag = {"config.json": etag}
    hub.stated_sha256 = {} if linked is None else {"model.safetensors": linked}
    hub.commit, hub.extra_length = commit, extra_length
    try:
        fetch_weights(["dinov2-small"], progress=False)
    except FsmiError as error:
        assert "\n" not in str(error)
    _only_cache_files(tmp_path)
    hub.commit, hub.extra_length = COMMIT, 0
