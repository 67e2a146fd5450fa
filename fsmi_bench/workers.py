"""Every core for work whose items are independent: a bounded, ordered thread map.

Threads rather than processes: what the stages hand out (PNG decoding and encoding, hashing, OpenCV,
NumPy and torch arithmetic on whole images) runs with the GIL released, and threads share the decoded
images without copies. Results come back in the items' order, so a stage's output does not depend on
the number of workers. ``FSMI_WORKERS`` sets the number (1: everything in the calling thread, nothing
started); by default one per available core, at most ``MAX_DEFAULT_WORKERS``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from fsmi_bench.errors import BadInputError

WORKERS_VARIABLE = "FSMI_WORKERS"
MAX_DEFAULT_WORKERS = 8

Item = TypeVar("Item")
Result = TypeVar("Result")


def worker_count() -> int:
    """``$FSMI_WORKERS`` if set, else the cores this process may use (at most ``MAX_DEFAULT_WORKERS``)."""
    text = os.environ.get(WORKERS_VARIABLE, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise BadInputError(f"{WORKERS_VARIABLE}={text!r}: expected a whole number of threads, at least 1")
        return int(text)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], workers: int | None = None,
                ahead: int | None = None) -> Iterator[Result]:
    """``function(item)`` for each item, computed by ``workers`` threads, yielded in the items' order.

    At most ``ahead`` items (default: twice the workers) are in flight or waiting to be taken, so memory
    stays bounded however long ``items`` is. An exception from ``function`` is raised here, at its item's
    place; leaving the loop early cancels what has not started and waits for what has.
    """
    workers = worker_count() if workers is None else max(1, int(workers))
    if workers == 1:
        for item in items:
            yield function(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    limit = max(1, ahead if ahead is not None else 2 * workers)
    pending: deque = deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fsmi-worker")
    try:
        for item in items:
            pending.append(executor.submit(function, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)
