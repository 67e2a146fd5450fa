"""Finding weights (explicit path > environment variable > local caches), never downloading."""

import json

import pytest

from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.io import sha256_file
from fsmi_bench.metrics.weights import load_weights_config, require, resolve
from fsmi_bench.provenance import weights_sha256


@pytest.fixture
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FSMI_CACHE_DIR", str(tmp_path / "fsmi"))
    for name in ("FSMI_CLIP_WEIGHTS", "FSMI_CLIP_HF_WEIGHTS", "FSMI_DINOV2_WEIGHTS", "FSMI_SQUEEZENET_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_missing_weight_says_what_and_where(caches):
    resolved = resolve("clip-vit-l-14")
    assert not resolved.present and resolved.source == "missing"
    assert any("models--timm--vit_large_patch14_clip_224.openai" in place for place in resolved.looked)
    with pytest.raises(MissingWeightsError, match="FSMI_CLIP_WEIGHTS"):
        require("clip-vit-l-14")


def test_found_in_the_hugging_face_and_torch_caches(caches):
    snapshot = caches / "hf" / "hub" / "models--facebook--dinov2-small" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"weights")
    resolved = resolve("dinov2-small")
    assert resolved.path == snapshot and resolved.source == "cache"
    checkpoint = caches / "torch" / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"backbone")
    found = resolve("squeezenet-imagenet")
    assert found.path == checkpoint and found.sha256 == sha256_file(checkpoint)
    # LPIPS's linear layers ship inside the lpips package.
    assert resolve("lpips-squeeze-linear").source == "package"


def test_explicit_path_beats_environment_beats_cache(caches, monkeypatch):
    cached = caches / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cache")
    from_env = caches / "env.pth"
    from_env.write_bytes(b"env")
    explicit = caches / "flag.pth"
    explicit.write_bytes(b"flag")
    monkeypatch.setenv("FSMI_ALEXNET_WEIGHTS", str(from_env))
    assert resolve("alexnet-imagenet").path == from_env
    assert resolve("alexnet-imagenet", {"alexnet-imagenet": str(explicit)}).path == explicit
    # A path given on purpose that does not exist is an error, not a silent fallback.
    with pytest.raises(MissingWeightsError, match="nowhere"):
        resolve("alexnet-imagenet", {"alexnet-imagenet": str(caches / "nowhere.pth")})


def test_weights_config_file(caches):
    config = caches / "weights.json"
    config.write_text(json.dumps({"clip-vit-l-14": "~/clip.safetensors"}))
    assert load_weights_config(config)["clip-vit-l-14"].endswith("clip.safetensors")
    config.write_text(json.dumps({"clip-vit-l14": "x"}))
    with pytest.raises(BadInputError, match="did you mean 'clip-vit-l-14'"):
        load_weights_config(config)


def test_folder_hash_is_stable_and_cached(caches):
    folder = caches / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"abc")
    first = weights_sha256(folder)
    assert weights_sha256(folder) == first
    assert (caches / "fsmi" / "weights-sha256.json").is_file()
    (folder / "model.safetensors").write_bytes(b"abcd")
    assert weights_sha256(folder) != first


def test_one_weights_folder_has_one_digest_in_run_json_and_metric_specs(caches):
    """run.json (provenance.weights_provenance) and a metric spec (metrics.weights.resolve) hash alike."""
    from fsmi_bench.provenance import weights_provenance

    folder = caches / "dino"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref")  # hidden: skipped by both
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    from_metrics = resolve("dinov2-small", {"dinov2-small": str(folder)}).sha256
    from_run = weights_provenance({"weights": str(folder)})["weights"]["sha256"]
    assert from_metrics == from_run == weights_sha256(folder)


def test_model_bank_loads_real_files_from_flags(tmp_path, monkeypatch):
    """The normal (non-test) loading path: weights given by name, found, hashed, loaded once."""
    from fsmi_bench.metrics.models import ModelBank
    from tests.support.metric_models import write_lpips_files, write_tiny_dinov2

    dino_dir = write_tiny_dinov2(tmp_path)
    _, backbone = write_lpips_files(tmp_path, "squeeze")
    bank = ModelBank({"dinov2-small": str(dino_dir), "squeezenet-imagenet": str(backbone)})
    status = bank.status("facebook/dinov2-small")
    assert status.present and status.weights_id == weights_sha256(dino_dir)
    assert bank.get("facebook/dinov2-small") is bank.get("facebook/dinov2-small")
    assert bank.status("lpips-squeeze-v0.1").present
    bank.get("lpips-squeeze-v0.1")
    monkeypatch.delenv("FSMI_CLIP_WEIGHTS", raising=False)
    assert not bank.status("ViT-L-14").present
    with pytest.raises(MissingWeightsError):
        bank.get("ViT-L-14")


def test_clip_in_the_hugging_face_format_is_found_and_checked_for_its_files(caches):
    snapshot = caches / "hf" / "hub" / "models--openai--clip-vit-large-patch14" / "snapshots" / "f00d"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        (snapshot / name).write_text("{}")
    # A folder without its tokenizer cannot run SmartEdit's CLIPProcessor: not taken from the cache ...
    assert not resolve("clip-vit-l-14-hf").present
    # ... and named as such when given on purpose.
    with pytest.raises(MissingWeightsError, match="lacks tokenizer.json or vocab.json"):
        resolve("clip-vit-l-14-hf", {"clip-vit-l-14-hf": str(snapshot)})
    (snapshot / "vocab.json").write_text("{}")
    found = resolve("clip-vit-l-14-hf")
    assert found.present and found.path == snapshot and found.source == "cache"


def test_model_bank_takes_the_first_clip_format_present(caches, monkeypatch):
    from fsmi_bench.metrics.models import ModelBank
    from fsmi_bench.metrics.specs import PROTOCOLS

    checkpoint = caches / "open_clip_model.safetensors"
    checkpoint.write_bytes(b"weights")
    monkeypatch.setenv("FSMI_CLIP_WEIGHTS", str(checkpoint))
    spec = PROTOCOLS["paper"]["fg_clip_t"]
    assert spec.accepted_models == ("openai/clip-vit-large-patch14", "ViT-L-14")
    chosen = ModelBank().choose(spec.accepted_models)
    assert chosen.present and chosen.model == "ViT-L-14" and chosen.weights_id == weights_sha256(checkpoint)
    monkeypatch.delenv("FSMI_CLIP_WEIGHTS")
    missing = ModelBank().choose(spec.accepted_models)
    assert not missing.present and "clip-vit-l-14-hf" in missing.reason and "FSMI_CLIP_WEIGHTS" in missing.reason
