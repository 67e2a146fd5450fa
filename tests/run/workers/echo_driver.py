"""Test worker driver: returns the scene with the mask region tinted red (50 % blend).

Config: ``start_log`` (a file; each load appends one line, so tests can count start-ups),
``require_file`` (load raises FileNotFoundError when it is missing, like a driver without weights),
``half_size`` (returns every other row and column, as official code that works at its own size does).
"""

import os

import numpy as np


def load(config):
    if config.get("require_file") and not os.path.exists(config["require_file"]):
        raise FileNotFoundError(f"weights not found: {config['require_file']}")
    if config.get("start_log"):
        with open(config["start_log"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    return {"tint": np.array([255, 0, 0], dtype=np.float64), "half_size": bool(config.get("half_size"))}


def edit(state, request, scene, mask, subject):
    if request["case_id"] == "driver_error":
        raise ValueError("driver refused this case")
    output = scene.astype(np.float64)
    output[mask] = 0.5 * output[mask] + 0.5 * state["tint"]
    output = np.round(output).astype(np.uint8)
    return np.ascontiguousarray(output[::2, ::2]) if state["half_size"] else output
