"""Test-wide settings: nothing may reach the network, and no cache outside a temporary folder is used."""

import os
import tempfile

_cache_root = tempfile.mkdtemp(prefix="fsmi-test-cache-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = os.path.join(_cache_root, "torch")
os.environ["HF_HOME"] = os.path.join(_cache_root, "hf")
os.environ["FSMI_CACHE_DIR"] = os.path.join(_cache_root, "fsmi")
os.environ.setdefault("OMP_NUM_THREADS", "2")
