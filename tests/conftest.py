"""Test-wide settings and fixtures: nothing may reach the network, and no cache outside a temporary folder
is used. Helpers that tests import (benchmark folders, test methods, tiny models) live in ``tests/support``."""

import os
import tempfile

import pytest

_cache_root = tempfile.mkdtemp(prefix="fsmi-test-cache-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = os.path.join(_cache_root, "torch")
os.environ["HF_HOME"] = os.path.join(_cache_root, "hf")
os.environ["FSMI_CACHE_DIR"] = os.path.join(_cache_root, "fsmi")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run far faster on one thread on a shared machine; restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
