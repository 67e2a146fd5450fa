"""Training on several processes (``accelerate launch``, one per GPU) keeps one model: the gradients of every
rank are averaged before each update (DDP), so the replicas, each trained on its own examples, end identical.
Two CPU processes with a gloo process group, started by torchrun (tests/support/ddp_rank.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "tests.support.ddp_rank", str(out)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def parameters(out: Path, run: str, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(out / f"{run}-rank{rank}.safetensors"))


def record(out: Path, run: str, rank: int) -> dict:
    return json.loads((out / f"{run}-rank{rank}.json").read_text())


def test_ranks_train_on_different_examples_and_end_with_the_same_weights(ranks):
    run = json.loads((ranks / "whole" / "train.json").read_text())
    assert run["num_processes"] == 2 and run["effective_batch_size"] == 2 * 2 * 2
    first, second = record(ranks, "whole", 0), record(ranks, "whole", 1)
    # 2 steps x 2 micro-batches x 2 examples on each rank, none of them the other rank's.
    assert len(first["kinds"]) == len(second["kinds"]) == 8
    assert first["losses"] != second["losses"]
    one, other = parameters(ranks, "whole", 0), parameters(ranks, "whole", 1)
    assert one.keys() == other.keys() and len(one) > 0
    differ = sorted(key for key in one if not torch.equal(one[key], other[key]))
    assert not differ, f"{len(differ)} of {len(one)} trained parameters differ between the ranks, e.g. {differ[:3]}"


def test_a_distributed_run_resumed_ends_as_the_uninterrupted_one_on_every_rank(ranks):
    # The state holds the trained parameters under the model's own names (no DDP or objective prefix), so it
    # resumes with any number of processes.
    saved = load_file(str(ranks / "parts" / "state-00000002" / "model.safetensors"))
    assert saved.keys() == parameters(ranks, "whole", 0).keys()
    for rank in (0, 1):
        assert record(ranks, "resumed", rank)["losses"] == record(ranks, "whole", rank)["losses"][1:]
        whole, resumed = parameters(ranks, "whole", rank), parameters(ranks, "resumed", rank)
        assert all(torch.equal(whole[key], resumed[key]) for key in whole)
