"""Fixtures shared by the FlexEdit training tests."""

import pytest


@pytest.fixture
def own_accelerate_state():
    """accelerate keeps one mixed precision per process and refuses another: a run with the ``paper`` config's
    bf16 starts from a fresh state and leaves one, so that the runs without mixed precision in this process
    are not refused."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()
