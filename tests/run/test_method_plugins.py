"""Methods from outside the package: ``module:Class``, ``file.py:Class`` and the ``fsmi.methods`` entry points."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.cli.ls import inventory_lines
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import load_rgb
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from fsmi_bench.run.method import METHODS
from tests.support.run_fixtures import make_benchmark

# A complete method as a user writes it: darkens the marked region by a fixed amount.
DARKEN_SOURCE = textwrap.dedent('''
    import numpy as np

    from fsmi_bench.run.method import EditRequest, Method


    class Darken(Method):
        name = "darken"

        def edit(self, request: EditRequest) -> np.ndarray:
            amount = int(self.config.get("amount", 40))
            image = request.scene.astype(np.int16)
            image[request.mask] -= amount
            return np.clip(image, 0, 255).astype(np.uint8)


    class NotAMethod:
        pass
''')


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=1, n_multi=1)


def _expected_darkened(bench: Path, run_dir: Path, amount: int = 40) -> None:
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.io import load_mask

    benchmark = load_benchmark(bench)
    for row in benchmark.rows:
        scene = load_rgb(benchmark.path(row.scene)).astype(np.int16)
        mask = load_mask(benchmark.path(row.mask))
        scene[mask] -= amount
        expected = np.clip(scene, 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(load_rgb(run_dir / "outputs" / row.case_id / f"{row.mask_type}.png"), expected)


def test_method_given_as_module_and_class(bench, tmp_path, monkeypatch):
    (tmp_path / "user_darken_module.py").write_text(DARKEN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    summary = run_method(RunConfig(method="user_darken_module:Darken", bench=bench, out=out, progress=False))
    assert summary.failed == 0 and summary.written == summary.selected > 0
    assert load_run(out).method == "darken"  # the class's name; the target is kept beside it
    assert load_run(out).info["method_target"] == "user_darken_module:Darken"
    _expected_darkened(bench, out)


def test_method_given_as_file_and_class_through_the_cli(bench, tmp_path):
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "darken_file.py").write_text(DARKEN_SOURCE)
    (tmp_path / "config.json").write_text(json.dumps({"amount": 7}))
    out = tmp_path / "run"
    target = f"{tmp_path / 'methods' / 'darken_file.py'}:Darken"
    result = CliRunner().invoke(main, ["run", "--method", target, "--bench", str(bench), "--out", str(out),
                                       "--config", str(tmp_path / "config.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["method_config"] == {"amount": 7}
    _expected_darkened(bench, out, amount=7)
    # Resuming imports the file again under the same module and finds everything done.
    again = CliRunner().invoke(main, ["run", "--method", target, "--bench", str(bench), "--out", str(out),
                                      "--config", str(tmp_path / "config.json"), "--no-progress"])
    assert again.exit_code == 0 and "0 written" in again.output


@pytest.mark.parametrize("target, message", [
    ("{dir}/darken_bad.py:Darkn", "has no attribute 'Darkn'; did you mean 'Darken'?"),
    ("{dir}/darken_bad.py:NotAMethod", "not a subclass of fsmi_bench.run.method.Method"),
    ("{dir}/missing.py:Darken", "no such file"),
    ("{dir}/broken.py:Darken", "SyntaxError"),
    ("no_such_module_for_fsmi:Darken", "No module named 'no_such_module_for_fsmi'"),
])
def test_bad_targets_are_one_line_errors(bench, tmp_path, target, message):
    (tmp_path / "darken_bad.py").write_text(DARKEN_SOURCE)
    (tmp_path / "broken.py").write_text("class Darken(:\n")
    target = target.format(dir=tmp_path)
    with pytest.raises(BadInputError) as caught:
        METHODS.get(target)
    assert message in str(caught.value)
    result = CliRunner().invoke(main, ["run", "--method", target, "--bench", str(bench),
                                       "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output


def test_unknown_name_mentions_the_target_forms():
    with pytest.raises(BadInputError, match="package.module:Class or path/to/file.py:Class"):
        METHODS.entry("darken")


def _install_distribution(site: Path, name: str, version: str, entry_points: dict[str, str], package: str) -> None:
    """A distribution as an installer leaves it in site-packages: the package and its ``.dist-info``
    folder (METADATA, entry_points.txt, RECORD), which is all ``importlib.metadata`` reads."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    (site / package / "methods.py").write_text(DARKEN_SOURCE)
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[fsmi.methods]\n{lines}")
    (dist_info / "RECORD").write_text("")


def test_entry_point_methods_are_listed_without_import_and_run(bench, tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_distribution(site, "fsmi-darken-plugin", "0.3.1", {
        "darken": "fsmi_darken_plugin.methods:Darken",
        "identity": "fsmi_darken_plugin.methods:Darken",  # may not replace the package's own
    }, package="fsmi_darken_plugin")
    assert "darken" not in METHODS
    monkeypatch.syspath_prepend(str(site))

    lines = inventory_lines("methods")
    listed = [line for line in lines if line.strip().startswith("darken ")]
    assert len(listed) == 1 and "[entry point of fsmi-darken-plugin 0.3.1]" in listed[0]
    assert "fsmi_darken_plugin.methods:Darken" in listed[0]
    assert any("identity" in line and "ignored" in line and "fsmi" in line for line in lines)
    assert "fsmi_darken_plugin" not in sys.modules  # listing reads metadata only

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--method", "darken", "--bench", str(bench), "--out", str(out),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert load_run(out).method == "darken"
    _expected_darkened(bench, out)
    assert METHODS.get("identity").__module__ == "baselines.identity"

    monkeypatch.undo()  # the package is gone from sys.path: so is its method
    assert "darken" not in METHODS


def _cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_a_target_runs_under_a_clean_name_and_keeps_its_target(bench, tmp_path):
    (tmp_path / "darken_file.py").write_text(DARKEN_SOURCE + "\n\nclass Brighten(Darken):\n    name = Method.name\n"
                                             "\n\nclass Unnamed(Method):\n    def edit(self, request):\n"
                                             "        return request.scene\n")
    named = _cli("run", "--method", f"{tmp_path}/darken_file.py:Darken", "--bench", bench, "--out", tmp_path / "a",
                 "--no-progress")
    assert named.exit_code == 0, named.output
    assert named.output.startswith("darken: ")
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["method"] == "darken" and info["method_target"] == f"{(tmp_path / 'darken_file.py').resolve()}:Darken"
    # No name of its own (or only the base class's): the class name.
    for class_name in ("Unnamed", "Brighten"):
        result = _cli("run", "--method", f"{tmp_path}/darken_file.py:{class_name}", "--bench", bench,
                      "--out", tmp_path / class_name, "--no-progress")
        assert result.exit_code == 0, result.output
        assert load_run(tmp_path / class_name).method == class_name
    # A method by name keeps no target.
    assert _cli("run", "--method", "identity", "--bench", bench, "--out", tmp_path / "i", "--no-progress").exit_code == 0
    assert "method_target" not in json.loads((tmp_path / "i" / "run.json").read_text())


def test_a_class_may_not_take_a_registered_name(bench, tmp_path):
    (tmp_path / "fake.py").write_text("from fsmi_bench.run.method import Method\n\n\nclass Fake(Method):\n"
                                      "    name = 'identity'\n\n    def edit(self, request):\n"
                                      "        return request.scene\n")
    result = _cli("run", "--method", f"{tmp_path}/fake.py:Fake", "--bench", bench, "--out", tmp_path / "run",
                  "--no-progress")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "is named 'identity', the name of a registered method" in result.output
    assert not (tmp_path / "run").exists()


def test_two_methods_of_one_name_never_share_a_table(bench, tmp_path):
    # Two users' files, both with a class named "darken": each runs, but their results never mix.
    for folder in ("alice", "bob"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "edit.py").write_text(DARKEN_SOURCE)
        result = _cli("run", "--method", f"{tmp_path / folder}/edit.py:Darken", "--bench", bench,
                      "--out", tmp_path / "runs" / folder, "--no-progress")
        assert result.exit_code == 0, result.output
    shared = tmp_path / "results" / "all.parquet"
    metrics = "bg_psnr,fg_psnr"
    first = _cli("score", "--bench", bench, "--run", tmp_path / "runs" / "alice", "--metrics", metrics,
                 "--out", shared, "--no-progress")
    assert first.exit_code == 0, first.output
    before = shared.read_bytes()
    again = _cli("score", "--bench", bench, "--run", tmp_path / "runs" / "alice", "--metrics", metrics,
                 "--out", shared, "--no-progress")
    assert again.exit_code == 0, again.output  # re-scoring the same method replaces its rows
    clash = _cli("score", "--bench", bench, "--run", tmp_path / "runs" / "bob", "--metrics", metrics,
                 "--out", shared, "--no-progress")
    assert clash.exit_code == 2 and len(clash.output.strip().splitlines()) == 1, clash.output
    assert "already holds results named 'darken' from another method" in clash.output
    assert "alice/edit.py:Darken" in clash.output and "bob/edit.py:Darken" in clash.output
    assert shared.read_bytes() == before  # nothing of either was lost
    # Scored apart, the two tables cannot be reported together either.
    for folder in ("alice", "bob"):
        assert _cli("score", "--bench", bench, "--run", tmp_path / "runs" / folder, "--metrics", metrics,
                    "--no-progress").exit_code == 0
    report = _cli("report", tmp_path / "runs" / "alice" / "results-paper.parquet",
                  tmp_path / "runs" / "bob" / "results-paper.parquet")
    assert report.exit_code == 2 and len(report.output.strip().splitlines()) == 1, report.output
    assert "two methods share the name 'darken'" in report.output and "bob/edit.py:Darken" in report.output
