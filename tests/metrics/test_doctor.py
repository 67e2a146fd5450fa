"""fsmi doctor: methods whose diffusers weights sit in the local Hugging Face cache show as ready."""

from click.testing import CliRunner

from fsmi_bench.cli import main


def test_doctor_finds_a_cached_diffusers_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.strip().startswith("instruct-pix2pix"))
    assert "MISSING WEIGHTS" in line
    snapshot = tmp_path / "models--timbrooks--instruct-pix2pix" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    result = CliRunner().invoke(main, ["doctor"])
    lines = result.output.splitlines()
    index = next(i for i, l in enumerate(lines) if l.strip().startswith("instruct-pix2pix"))
    assert "ready" in lines[index] and str(snapshot) in lines[index + 1]
    assert "given to run" in next(l for l in lines if l.strip().startswith("anydoor"))


def test_doctor_shows_both_clip_formats_and_where_each_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("FSMI_CLIP_WEIGHTS", "FSMI_CLIP_HF_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    lines = CliRunner().invoke(main, ["doctor", "--protocol", "paper"]).output.splitlines()
    index = next(i for i, l in enumerate(lines) if l.strip().startswith("fg_clip_t"))
    assert "MISSING WEIGHTS" in lines[index] and "openai/clip-vit-large-patch14 or ViT-L-14" in lines[index]
    assert "clip-vit-l-14-hf: not found; $FSMI_CLIP_HF_WEIGHTS" in lines[index + 1]
    assert lines[index + 2].strip() == "or, instead, ViT-L-14:" and "$FSMI_CLIP_WEIGHTS" in lines[index + 3]
    # The open_clip checkpoint alone makes the metric ready (recorded as a substitute when scored).
    checkpoint = tmp_path / "open_clip_model.safetensors"
    checkpoint.write_bytes(b"weights")
    lines = CliRunner().invoke(main, ["doctor", "--protocol", "paper", "--weights",
                                      f"clip-vit-l-14={checkpoint}"]).output.splitlines()
    assert "ready" in next(l for l in lines if l.strip().startswith("fg_clip_t"))
