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
