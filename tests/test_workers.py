"""The thread map behind every stage's parallel work: results in order, memory bounded, errors at their
item, and FSMI_WORKERS to choose the number (1: all in the calling thread)."""

from __future__ import annotations

import threading
import time

import pytest

from fsmi_bench.errors import BadInputError
from fsmi_bench.workers import ordered_map, worker_count


def test_results_come_in_order_whatever_finishes_first():
    def slow_for_small(number):
        time.sleep(0.002 * (10 - number))
        return number * number

    assert list(ordered_map(slow_for_small, range(10), workers=3)) == [number * number for number in range(10)]


def test_at_most_ahead_items_are_taken_before_their_results_are():
    started = []
    lock = threading.Lock()

    def record(number):
        with lock:
            started.append(number)
        return number

    results = ordered_map(record, range(100), workers=2, ahead=4)
    assert next(results) == 0
    time.sleep(0.05)
    assert len(started) <= 5  # the 4 in flight, and the one queued when the first was taken
    assert list(results) == list(range(1, 100))


def test_an_error_is_raised_at_its_item_and_the_rest_is_not_started():
    started = []

    def fail_at_three(number):
        started.append(number)
        if number == 3:
            raise ValueError("three")
        return number

    results = ordered_map(fail_at_three, range(1000), workers=2, ahead=4)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(results)
    assert len(started) < 20


def test_fsmi_workers_sets_the_number_and_one_runs_in_the_calling_thread(monkeypatch):
    monkeypatch.setenv("FSMI_WORKERS", "1")
    assert worker_count() == 1
    assert set(ordered_map(lambda _: threading.get_ident(), range(5))) == {threading.get_ident()}
    monkeypatch.setenv("FSMI_WORKERS", "3")
    assert worker_count() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("FSMI_WORKERS", bad)
        with pytest.raises(BadInputError, match="FSMI_WORKERS"):
            worker_count()
    monkeypatch.delenv("FSMI_WORKERS")
    assert 1 <= worker_count() <= 8
