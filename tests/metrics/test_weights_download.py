"""`fsmi weights fetch` against a hub-like server on 127.0.0.1 (never the internet): hashes, resume, layout."""

from __future__ import annotations

import hashlib
import re

import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.errors import IntegrityError
from fsmi_bench.metrics import download
from fsmi_bench.metrics.download import (
    FETCH_TARGETS,
    DownloadError,
    FetchTarget,
    TorchvisionFile,
    fetch_weights,
    load_fetch_record,
)
from fsmi_bench.metrics.weights import resolve
from tests.support.hub_server import COMMIT, files_under, pin

REAL_TARGETS = dict(FETCH_TARGETS)  # as shipped, before any test points them at the stand-in server


def test_fetched_dinov2_is_found_and_loads_as_the_real_class(hub, tmp_path):
    fetched = fetch_weights(["dinov2-small"], progress=False)
    assert [item.path.name for item in fetched] == ["config.json", "model.safetensors"]
    resolved = resolve("dinov2-small")
    assert resolved.source == "cache"
    assert resolved.path == tmp_path / f"hf/hub/models--facebook--dinov2-small/snapshots/{COMMIT}"
    # Fetched by commit, not by branch: no ref claims that main is that commit.
    assert not (tmp_path / "hf/hub/models--facebook--dinov2-small/refs").exists()
    from fsmi_bench.metrics.dino_metric import load_dinov2

    assert load_dinov2(resolved.path).config.hidden_size == 32
    record = load_fetch_record()
    model_sha256 = hashlib.sha256(hub.repos["facebook/dinov2-small"]["model.safetensors"]).hexdigest()
    assert record["hf:facebook/dinov2-small/model.safetensors"]["sha256"] == model_sha256
    # Fetching again downloads nothing and asks for the recorded commit, not the branch.
    hub.requests.clear()
    again = fetch_weights(["dinov2-small"], progress=False)
    assert not any(item.downloaded for item in again)
    assert all(f"/resolve/{COMMIT}/" in path for method, path, _ in hub.requests)
    assert not any(method == "GET" for method, _, _ in hub.requests)


def test_a_wrong_stated_hash_is_refused_and_nothing_is_left(hub, tmp_path, monkeypatch):
    hub.stated_sha256["open_clip_model.safetensors"] = "0" * 64
    with pytest.raises(IntegrityError, match="the hub states sha256 0000.*fsmi pins"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    pin(monkeypatch, hub, "clip-vit-l-14", pinned=False)  # no pin: the hub's statement is checked against the bytes
    with pytest.raises(IntegrityError, match="is not the stated 0000"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    assert not resolve("clip-vit-l-14").present
    result = CliRunner().invoke(main, ["weights", "fetch", "clip-vit-l-14", "--no-progress"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


CLIP_CDN = "/cdn/timm/vit_large_patch14_clip_224.openai/open_clip_model.safetensors"


def test_a_broken_download_resumes_where_it_stopped(hub, tmp_path):
    data = hub.repos["timm/vit_large_patch14_clip_224.openai"]["open_clip_model.safetensors"]
    hub.breaks = [7000]  # the connection ends once: asked again at once, from byte 7000
    (item,) = fetch_weights(["clip-vit-l-14"], progress=False)
    assert ("GET", CLIP_CDN, "bytes=7000-") in hub.requests
    assert item.path.read_bytes() == data and item.sha256 == hashlib.sha256(data).hexdigest()
    assert resolve("clip-vit-l-14").path == item.path
    blobs = tmp_path / "hf/hub/models--timm--vit_large_patch14_clip_224.openai/blobs"
    assert [path.name for path in blobs.iterdir()] == [item.sha256]


def test_a_download_that_keeps_breaking_is_kept_for_the_next_call(hub, tmp_path):
    data = hub.repos["timm/vit_large_patch14_clip_224.openai"]["open_clip_model.safetensors"]
    hub.breaks = [3000, 2000, 1000]  # each answer brings more, but the file is never whole in this call
    with pytest.raises(DownloadError, match="run the same command again"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    blobs = tmp_path / "hf/hub/models--timm--vit_large_patch14_clip_224.openai/blobs"
    (partial,) = blobs.iterdir()
    assert partial.name.endswith(".incomplete") and partial.read_bytes() == data[:6000]
    assert not resolve("clip-vit-l-14").present

    hub.requests.clear()
    (item,) = fetch_weights(["clip-vit-l-14"], progress=False)
    assert ("GET", CLIP_CDN, "bytes=6000-") in hub.requests
    assert item.path.read_bytes() == data


def test_torchvision_files_are_checked_against_their_name(hub, tmp_path, monkeypatch):
    data = b"squeeze" * 999
    good_name = f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    hub.torchvision = {good_name: data, "tinynet-deadbeef.pth": data}
    monkeypatch.setitem(FETCH_TARGETS, "squeezenet-imagenet",
                        FetchTarget("squeezenet-imagenet", TorchvisionFile(good_name)))
    (item,) = fetch_weights(["squeezenet-imagenet"], progress=False)
    assert item.path == tmp_path / "torch/hub/checkpoints" / good_name and item.path.read_bytes() == data

    monkeypatch.setitem(FETCH_TARGETS, "squeezenet-imagenet",
                        FetchTarget("squeezenet-imagenet", TorchvisionFile("tinynet-deadbeef.pth")))
    with pytest.raises(IntegrityError, match="does not start with deadbeef"):
        fetch_weights(["squeezenet-imagenet"], progress=False)
    assert files_under(tmp_path / "torch/hub/checkpoints") == [good_name]


def test_the_hash_of_the_first_download_is_kept(hub, tmp_path, monkeypatch):
    pin(monkeypatch, hub, "clip-vit-l-14", pinned=False)
    fetch_weights(["clip-vit-l-14"], progress=False)
    first = load_fetch_record()["hf:timm/vit_large_patch14_clip_224.openai/open_clip_model.safetensors"]
    # The publisher now serves other content under the same commit: refused, the first file kept.
    hub.repos["timm/vit_large_patch14_clip_224.openai"]["open_clip_model.safetensors"] = b"other" * 100
    with pytest.raises(IntegrityError, match="the first download had"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert resolve("clip-vit-l-14").sha256 == first["sha256"]


def test_offline_and_unknown_names_are_one_line_errors(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    result = CliRunner().invoke(main, ["weights", "fetch", "dinov2-small", "--no-progress"])
    assert result.exit_code == 2 and "cannot reach" in result.output and "offline" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["weights", "fetch", "lpips-alex-linear"])
    assert result.exit_code == 2 and "shipped with the lpips package" in result.output


def test_cli_prints_each_file_and_its_sha256(hub, tmp_path):
    result = CliRunner().invoke(main, ["weights", "fetch", "clip-vit-l-14", "--no-progress"])
    assert result.exit_code == 0, result.output
    data = hub.repos["timm/vit_large_patch14_clip_224.openai"]["open_clip_model.safetensors"]
    sha256 = hashlib.sha256(data).hexdigest()
    assert result.output.strip() == (f"clip-vit-l-14: downloaded {tmp_path}/hf/hub/models--timm--vit_large_patch14_"
                                     f"clip_224.openai/snapshots/{COMMIT}/open_clip_model.safetensors sha256 {sha256}")
    assert download.DEFAULT_HF_ENDPOINT == "https://huggingface.co"


def test_the_metric_repositories_are_pinned_to_a_commit_and_sha256():
    for name in ("clip-vit-l-14", "dinov2-small", "clip-vit-l-14-hf"):
        source = REAL_TARGETS[name].source
        assert re.fullmatch(r"[0-9a-f]{40}", source.revision), name
        assert [filename for filename, _ in source.pinned] == list(source.files)
        assert all(re.fullmatch(r"[0-9a-f]{64}", sha256) for _, sha256 in source.pinned)


def test_other_bytes_than_the_pinned_ones_are_refused(hub, tmp_path, monkeypatch):
    # The real pins, against a server that has the same commit but not the publisher's files.
    for name in ("clip-vit-l-14", "dinov2-small"):
        monkeypatch.setitem(FETCH_TARGETS, name, REAL_TARGETS[name])
    hub.commit = download.DINOV2_SMALL_COMMIT
    # Refused by its pinned size (547 bytes) before a byte is kept; the same size with other bytes, by its sha256.
    with pytest.raises(IntegrityError, match="fsmi pins 547; refused, nothing kept"):
        fetch_weights(["dinov2-small"], progress=False)
    hub.repos["facebook/dinov2-small"]["config.json"] = b"{}".ljust(547)
    with pytest.raises(IntegrityError, match=f"is not the stated {FETCH_TARGETS['dinov2-small'].source.pinned[0][1]}"):
        fetch_weights(["dinov2-small"], progress=False)
    hub.commit = download.CLIP_VIT_L_14_COMMIT
    with pytest.raises(IntegrityError, match="fsmi pins 9ce2e8a8"):
        fetch_weights(["clip-vit-l-14"], progress=False)
    assert files_under(tmp_path / "hf") == []
    assert not resolve("dinov2-small").present and not resolve("clip-vit-l-14").present


def _doctor_weight_lines(weight: str, *extra) -> set[str]:
    result = CliRunner().invoke(main, ["doctor", *extra])
    assert result.exit_code == 0, result.output
    return {line.strip() for line in result.output.splitlines() if line.strip().startswith(f"{weight}: ")}


def test_doctor_says_what_each_digest_can_be_checked_against(hub, tmp_path, monkeypatch):
    # Pinned in fsmi (dinov2), or stated by the hub for an LFS file (clip without a pin): the publisher's.
    (config, model) = fetch_weights(["dinov2-small"], progress=False)
    pin(monkeypatch, hub, "clip-vit-l-14", pinned=False)
    (clip,) = fetch_weights(["clip-vit-l-14"], progress=False)
    (line,) = _doctor_weight_lines("dinov2-small")
    assert line == f"dinov2-small: {config.path.parent} sha256 {resolve('dinov2-small').sha256} (publisher's sha256)"
    (line,) = _doctor_weight_lines("clip-vit-l-14")
    assert line == f"clip-vit-l-14: {clip.path} sha256 {clip.sha256} (publisher's sha256)"
    # A torchvision file: its name carries only the start of its sha256; the rest is the first download's.
    data = b"squeeze" * 999
    name = f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    hub.torchvision = {name: data}
    monkeypatch.setitem(FETCH_TARGETS, "squeezenet-imagenet", FetchTarget("squeezenet-imagenet", TorchvisionFile(name)))
    (squeeze,) = fetch_weights(["squeezenet-imagenet"], progress=False)
    monkeypatch.setenv("FSMI_SQUEEZENET_WEIGHTS", str(squeeze.path))
    (line,) = _doctor_weight_lines("squeezenet-imagenet")
    assert line.endswith(f"sha256 {squeeze.sha256} (recorded at first download)")
    # A file fsmi did not fetch: a digest, and nothing claimed for it.
    own = tmp_path / "my_clip.safetensors"
    own.write_bytes(b"mine" * 100)
    (line,) = _doctor_weight_lines("clip-vit-l-14", "--weights", f"clip-vit-l-14={own}")
    assert line == f"clip-vit-l-14: {own} sha256 {hashlib.sha256(own.read_bytes()).hexdigest()}"


def test_doctor_marks_an_unpinned_small_hub_file_as_recorded_at_first_download(hub, monkeypatch):
    pin(monkeypatch, hub, "dinov2-small", pinned=False)  # config.json: the hub states only its git sha1
    fetch_weights(["dinov2-small"], progress=False)
    record = load_fetch_record()
    assert record["hf:facebook/dinov2-small/config.json"]["sha256_source"] == "first download"
    assert record["hf:facebook/dinov2-small/model.safetensors"]["sha256_source"] == "hub"
    (line,) = _doctor_weight_lines("dinov2-small")
    assert line.endswith("(recorded at first download)")
    # The bytes change on disk: the digest no longer is the recorded one, and doctor claims nothing.
    model = resolve("dinov2-small").path / "model.safetensors"
    model.resolve().write_bytes(b"tampered")
    (line,) = _doctor_weight_lines("dinov2-small")
    assert "(" not in line


@pytest.fixture(scope="module")
def tiny_hf_clip_files(tmp_path_factory) -> dict[str, bytes]:
    """The files of openai/clip-vit-large-patch14 that fsmi fetches, for a tiny random CLIPModel of the real
    classes; tokenizer.json is what transformers' fast tokenizer writes from the folder's vocab and merges."""
    from transformers import CLIPTokenizerFast

    from tests.support.metric_models import write_tiny_hf_clip

    folder = write_tiny_hf_clip(tmp_path_factory.mktemp("clip-hf"))
    fast = tmp_path_factory.mktemp("clip-hf-fast")
    CLIPTokenizerFast.from_pretrained(folder).save_pretrained(fast)
    files = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    files["tokenizer.json"] = (fast / "tokenizer.json").read_bytes()
    return files


def test_fetched_hf_clip_folder_is_found_and_loads_as_the_real_classes(hub, tmp_path, monkeypatch,
                                                                         tiny_hf_clip_files):
    from transformers import CLIPModel, CLIPProcessor

    hub.repos["openai/clip-vit-large-patch14"] = dict(tiny_hf_clip_files)
    pin(monkeypatch, hub, "clip-vit-l-14-hf")
    fetched = fetch_weights(["clip-vit-l-14-hf"], progress=False)
    assert [item.path.name for item in fetched] == list(REAL_TARGETS["clip-vit-l-14-hf"].source.files)
    resolved = resolve("clip-vit-l-14-hf")
    assert resolved.source == "cache"
    assert resolved.path == tmp_path / f"hf/hub/models--openai--clip-vit-large-patch14/snapshots/{COMMIT}"
    model = CLIPModel.from_pretrained(resolved.path)
    processor = CLIPProcessor.from_pretrained(resolved.path)
    assert model.config.projection_dim == 16
    tokens = processor(text=["a dog"], return_tensors="pt")["input_ids"][0].tolist()
    assert tokens[0] == 49406 and tokens[-1] == 49407 and len(tokens) == 4  # <start> a dog <end>
    assert [item.path.name for item in fetched if item.path.name == "model.safetensors"] and all(
        item.sha256 == hashlib.sha256(tiny_hf_clip_files[item.path.name]).hexdigest() for item in fetched)
    (line,) = _doctor_weight_lines("clip-vit-l-14-hf")
    assert line == f"clip-vit-l-14-hf: {resolved.path} sha256 {resolved.sha256} (publisher's sha256)"
    result = CliRunner().invoke(main, ["weights", "fetch", "clip-vit-l-14-hf", "--no-progress"])
    assert result.exit_code == 0 and result.output.count("already here") == 8, result.output
