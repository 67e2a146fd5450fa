"""Test worker driver: never answers case ``hang_on`` (sleeps); other cases return the scene."""

import time


def load(config):
    return dict(config)


def edit(state, request, scene, mask, subject):
    if request["case_id"] == state.get("hang_on"):
        time.sleep(3600)
    return scene.copy()
