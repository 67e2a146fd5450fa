"""Fixtures of the metric tests: the hub stand-in (``tests.support.hub_server``) with tiny DINOv2 and CLIP files."""

from __future__ import annotations

import pytest

from tests.support.hub_server import HubLikeServer, pin


@pytest.fixture(scope="module")
def tiny_dinov2_files(tmp_path_factory) -> dict[str, bytes]:
    from tests.support.metric_models import write_tiny_dinov2

    folder = write_tiny_dinov2(tmp_path_factory.mktemp("dino"))
    return {"config.json": (folder / "config.json").read_bytes(),
            "model.safetensors": (folder / "model.safetensors").read_bytes()}


@pytest.fixture()
def hub(tmp_path, monkeypatch, tiny_dinov2_files):
    server = HubLikeServer()
    server.repos["facebook/dinov2-small"] = dict(tiny_dinov2_files)
    server.repos["timm/vit_large_patch14_clip_224.openai"] = {"open_clip_model.safetensors": b"clip" * 5000}
    server.lfs |= {"model.safetensors", "open_clip_model.safetensors"}
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("FSMI_TORCHVISION_URL", f"{server.url}/models")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FSMI_CACHE_DIR", str(tmp_path / "fsmi"))
    monkeypatch.delenv("FSMI_DINOV2_WEIGHTS", raising=False)
    monkeypatch.delenv("FSMI_CLIP_WEIGHTS", raising=False)
    # The real targets are pinned to the publisher's commit and hashes; here, to the stand-in's.
    for name in ("clip-vit-l-14", "dinov2-small"):
        pin(monkeypatch, server, name)
    yield server
    server.close()
