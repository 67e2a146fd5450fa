"""Helpers for the stand-in checkouts of official code (tests/baselines/test_*_driver.py).

A stand-in mirrors the official repository's module paths, names, signatures and the released checkpoints'
layout, with tiny files instead of models, and logs what it was given to ``calls.jsonl`` in the checkout so a
test can check that what the user configured is what is used. Helper models loaded by hub id live in a
Hugging Face cache folder laid out as huggingface_hub writes it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from fsmi_bench.run.method import EditRequest

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
# A PYTHONPATH folder whose sitecustomize makes a CPU-only machine look like one with CUDA GPUs.
FAKE_CUDA = str(Path(__file__).with_name("fake_cuda"))

LOGGER = '''
import json, os
def log(**entry):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl"), "a") as handle:
        handle.write(json.dumps(entry) + "\\n")
'''


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))


def cache_model(cache: Path, repo_id: str, files: dict[str, str | bytes]) -> None:
    """A model in a hub cache folder as huggingface_hub lays it out (refs/main -> snapshots/<hash>/)."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = {f"snapshots/{SNAPSHOT}/{name}": content for name, content in files.items()}
    write_files(folder, {"refs/main": SNAPSHOT, **snapshot})


def cached_file(cache: Path, repo_id: str, filename: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / SNAPSHOT / filename


def read_calls(checkout: Path) -> list[dict]:
    log = checkout / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def make_request(with_subject=True, subject_mask=True, seed=3, op="add", scene=None):
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) if scene is None else scene
    mask = np.zeros(scene.shape[:2], dtype=bool)
    mask[10:22, 14:30] = True
    subject = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8) if with_subject else None
    true_mask = None
    if with_subject and subject_mask:
        true_mask = np.zeros((20, 16), dtype=bool)
        true_mask[4:15, 3:12] = True
    return EditRequest(scene=scene, subject=subject, mask=mask, instruction="add the cup here", label="cup",
                       seed=seed, case_id="multi_0001" if with_subject else "single_0001", mask_type="circle",
                       kind="multi" if with_subject else "single", op=op, subject_mask=true_mask)


def run_requests(method, *requests):
    try:
        return [method.edit(request) for request in requests]
    finally:
        method.close()


def doctor(config: dict, tmp_path: Path, method: str) -> tuple[int, list[str]]:
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    config_path = tmp_path / f"{method}-config.json"
    config_path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["doctor", "--method", method, "--config", str(config_path)])
    return result.exit_code, result.output.splitlines()


def failing_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]
