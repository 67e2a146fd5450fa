"""The Python API given arguments of every wrong type: each call returns, or raises the package's own error
(``FsmiError``) in one line naming the argument, before any work; never a TypeError from deep inside, and
nothing written outside the folders given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fsmi_bench as fsmi
from fsmi_bench.errors import BadInputError, FsmiError
from tests.support.run_fixtures import make_benchmark

WRONG = [None, 1, 1.5, True, "", "x", b"x", [], {}, object(), np.zeros(3), -1, 10**30, float("nan"), ["x", 1],
         {"a": 1}, ("full", None), np.bool_(True), Path("")]
# "x" and Path("") (the working folder) are paths: given for a path, they are used as such.
PATH_ARGUMENTS = ("path", "bench", "out", "run", "plots", "specs")


class Ok(fsmi.Method):
    name = "ok"

    def edit(self, request):
        return request.scene


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    work = tmp_path_factory.mktemp("api-arguments")
    bench = make_benchmark(work / "bench", n_single=1, n_multi=1, mask_types=("full", "circle"))
    run = fsmi.run_method(Ok(), bench, out=work / "run", progress=False)
    table = fsmi.score(run, bench, metrics=["bg_psnr", "fg_psnr"], progress=False)
    return bench, run, table


CALLS = {
    "load_benchmark": ["path", "verify"],
    "run_method": ["method", "bench", "out", "masks", "kinds", "limit", "shard", "seed", "device", "config",
                   "progress"],
    "score": ["run", "bench", "metrics", "protocol", "out", "weights", "device", "batch_size", "strict_weights",
              "cache", "progress"],
    "make_report": ["tables", "out", "fmt", "with_paper", "methods", "metrics", "decimals", "all_cases", "plots",
                    "specs", "resamples", "seed"],
}


def _call(name: str, made, work: Path, **changes):
    bench, run, table = made
    base = {"load_benchmark": {"path": bench},
            "run_method": {"method": Ok(), "bench": bench, "out": work / "out", "progress": False},
            "score": {"run": run, "bench": bench, "metrics": ["bg_psnr"], "progress": False, "cache": False,
                      "out": work / "r.parquet"},
            "make_report": {"tables": table, "resamples": 10}}[name]
    return getattr(fsmi, name)(**{**base, **changes})


@pytest.mark.parametrize("function, argument", [(name, argument) for name, arguments in CALLS.items()
                                                for argument in arguments])
def test_a_wrong_argument_is_the_package_error_in_one_line(made, tmp_path, monkeypatch, function, argument):
    monkeypatch.chdir(tmp_path)  # a path made of a wrong value ("1", "True") would land here
    refused = 0
    values = [value for value in WRONG if argument not in PATH_ARGUMENTS or not isinstance(value, (str, Path))
              or value == ""]
    for number, value in enumerate(values):
        work = tmp_path / f"call{number}"
        work.mkdir()
        try:
            _call(function, made, work, **{argument: value})
        except FsmiError as error:
            assert "\n" not in str(error) and len(str(error)) < 400, str(error)
            refused += 1
    assert refused >= len(values) // 2, refused  # most of them are no value of that argument at all
    assert {path.name for path in tmp_path.iterdir()} == {f"call{number}" for number in range(len(values))}


@pytest.mark.parametrize("key", [[], {}, np.zeros(2), 1.5, None, True])
def test_indexing_a_benchmark_by_anything_but_an_id_or_a_position_is_one_line(made, key):
    bench = fsmi.load_benchmark(made[0])
    with pytest.raises(BadInputError, match="index a benchmark by case id"):
        bench[key]
    with pytest.raises(BadInputError, match="mask_type: give a non-empty str"):
        bench[0].request(key)
    with pytest.raises(BadInputError, match="run_seed: give a whole number"):
        bench[0].request("full", key)


def test_the_messages_name_the_argument(made, tmp_path):
    bench, run, table = made
    cases = [(lambda: fsmi.score(run, bench, batch_size="8"), "batch_size: give a whole number from 1"),
             (lambda: fsmi.run_method(Ok(), bench, out=tmp_path / "o", limit=0), "limit: give a whole number from 1"),
             (lambda: fsmi.make_report(table, decimals=1.5), "decimals: give a whole number from 0 to 10"),
             (lambda: fsmi.make_report(5), "tables: give a DataFrame or a path of results"),
             (lambda: fsmi.make_report(table, plots=1), "plots: give a path"),
             (lambda: fsmi.make_report(table, seed=-1), "bootstrap seed"),
             (lambda: fsmi.score(run, bench, weights=["x"]), "weights: give a dict"),
             (lambda: fsmi.load_benchmark(b"bench"), "path: give a path"),
             (lambda: fsmi.run_method(Ok(), bench, out=""), "out: give a path")]
    for call, message in cases:
        with pytest.raises(BadInputError, match=message):
            call()
