"""Test worker driver: like the echo driver, but the process dies on case ``crash_on``."""

import os
import sys

import numpy as np


def load(config):
    return dict(config)


def edit(state, request, scene, mask, subject):
    if request["case_id"] == state.get("crash_on"):
        sys.stderr.write(f"simulated fatal error on {request['case_id']}\n")
        sys.stderr.flush()
        os._exit(7)  # no cleanup, no reply: like a segfault or an out-of-memory kill
    output = scene.copy()
    output[mask] = 255 - output[mask]
    return output
