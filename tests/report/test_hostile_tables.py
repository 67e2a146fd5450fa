"""Hostile results tables and leaderboards: metric specs of every JSON shape and depth, bootstrap settings that
would allocate gigabytes or crash numpy, a metric whose direction differs between rows. `fsmi report` and
`fsmi compare` give the tables, or one line and exit 2; never a traceback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmi_bench.cli import main
from fsmi_bench.report.make_report import ReportConfig, make_report
from fsmi_bench.report.stats import MAX_RESAMPLES
from tests.support.results_tables import results_frame, write_results


def _one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("other"), results_frame("beta", 1.0, cases=1), "beta")


@pytest.mark.parametrize("spec, accepted", [
    ("[1]", False), ("null", False), ('"text"', False), ("3", False), ("true", False),
    ('{"fsmi_choices": [1, 2]}', False), ('{"fsmi_choices": "x"}', False), ('{"fsmi_choices": {"a": {"b": 1}}}', False),
    ('{"fsmi_choices": {"rule": 2}}', False), ("[" * 50_000 + "]" * 50_000, False),
    ('{"a":' * 40 + "1" + "}" * 40, False),
    ('{"a":' * 900 + "1" + "}" * 900, False), ("{} | []", False),
    ('{"model": {"x": 1}, "size": [1, 2]}', True), ('{"a": NaN}', True), ("{", True), ("", True), ("plain text", True),
    ('{"model": "/home/someone/clip"} | {"fsmi_choices": null}', True),
    ('{"fsmi_choices": {"crop": "the box of the region"}}', True)])
def test_metric_specs_of_any_shape_are_reported_or_one_line(tmp_path, other, spec, accepted):
    frame = results_frame("alpha", 0.0, cases=1)
    frame["metric_spec"] = spec
    table = write_results(tmp_path, frame, "alpha")
    for options in ([], ["--latex", "--specs", str(tmp_path / "specs.json")]):
        result = CliRunner().invoke(main, ["report", str(table), str(other), "--resamples", "20", *options])
        if accepted:
            assert result.exit_code == 0, (result.output, result.exception)
        else:
            assert "metric_spec" in _one_line(result)


@pytest.fixture()
def board(tmp_path):
    frame = pd.concat([results_frame("alpha", 0.0, cases=2), results_frame("beta", 1.0, cases=2)])
    results = write_results(tmp_path, frame, "results")
    board = tmp_path / "board.csv"
    make_report(ReportConfig(results=(str(results),), leaderboard=str(board), resamples=50, seed=5))
    return results, board


@pytest.mark.parametrize("bootstrap", ["resamples=0 seed=5", "resamples=-5 seed=5", "resamples=2000000000 seed=5",
                                       f"resamples={MAX_RESAMPLES + 1} seed=0", "resamples=10 seed=-1",
                                       "resamples=10 seed=" + "9" * 30, "resamples=1e9 seed=0", "resamples= seed=",
                                       "seed=0", "resamples=" + "9" * 5000 + " seed=0"])
def test_a_leaderboard_header_with_unusable_bootstrap_settings_is_one_line(board, bootstrap):
    results, path = board
    text = path.read_text().replace("# bootstrap: resamples=50 seed=5", f"# bootstrap: {bootstrap}")
    path.write_text(text)
    assert "bootstrap" in _one_line(CliRunner().invoke(main, ["compare", str(results), "--baseline", str(path)]))


def test_the_bootstrap_settings_at_their_bounds_compare(board):
    results, path = board
    assert CliRunner().invoke(main, ["compare", str(results), "--baseline", str(path)]).exit_code == 0
    text = path.read_text().replace("# bootstrap: resamples=50 seed=5", "# bootstrap: resamples=1 seed=0")
    path.write_text(text)
    result = CliRunner().invoke(main, ["compare", str(results), "--baseline", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output  # other intervals: a difference, not a crash


@pytest.mark.parametrize("options", [["--seed", "-1"], ["--resamples", "0"], ["--resamples", "2000000000"],
                                     ["--seed", str(2**64)]])
def test_report_bootstrap_options_out_of_range_are_one_line(other, options):
    assert "bootstrap" in _one_line(CliRunner().invoke(main, ["report", str(other), *options]))


def test_a_metric_whose_direction_differs_between_rows_is_refused(tmp_path, other):
    frame = results_frame("alpha", 0.0, cases=2)
    frame.loc[frame.index[:3], "higher_is_better"] = ~frame.loc[frame.index[:3], "higher_is_better"]
    table = write_results(tmp_path, frame, "alpha")
    line = _one_line(CliRunner().invoke(main, ["report", str(table), str(other), "--resamples", "20"]))
    assert "higher-is-better in some rows and lower-is-better in others" in line and "alpha" in line
    flipped = results_frame("gamma", 2.0, cases=2)
    flipped["higher_is_better"] = ~flipped["higher_is_better"]  # one table says up, the other down
    flipped_table = write_results(tmp_path, flipped, "gamma")
    line = _one_line(CliRunner().invoke(main, ["report", str(flipped_table), str(other), "--resamples", "20"]))
    assert "gamma" in line and "beta" in line


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=12)
SPEC_KEYS = st.sampled_from(["model", "size", "fsmi_choices", "region_mode"])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=30),
                      st.dictionaries(SPEC_KEYS, JSON_VALUES, max_size=3).map(json.dumps)))
def test_fuzzed_metric_specs_are_reported_or_one_line(tmp_path_factory, other, spec):
    frame = results_frame("alpha", 0.0, cases=1, kinds=("multi",))
    frame["metric_spec"] = spec
    table = write_results(tmp_path_factory.mktemp("fuzz"), frame, "alpha")
    result = CliRunner().invoke(main, ["report", str(table), str(other), "--latex", "--resamples", "20"])
    assert result.exit_code in (0, 2), (spec, result.output, result.exception)
    if result.exit_code == 2:
        _one_line(result)
