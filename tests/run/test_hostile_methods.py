"""A user's method that misbehaves in every step of its own code: raising, calling ``sys.exit``, returning the
wrong type, changing the working folder. `fsmi run` ends with one line and exit 2 (or, for one edit, records a
failure and goes on), never a traceback, never a run.json left "running", nothing written outside --out."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import fsmi_bench as fsmi
from fsmi_bench.cli import main
from fsmi_bench.errors import MethodError
from fsmi_bench.run.method import METHODS
from tests.support.run_fixtures import make_benchmark

HOSTILE_SOURCE = textwrap.dedent('''
    import os
    import sys

    from fsmi_bench.run.method import Method

    BEHAVIOUR = {behaviour!r}


    def act(step):
        what = BEHAVIOUR.get(step)
        if what == "raise":
            raise ValueError(f"broken in {{step}}")
        if what == "exit-0":
            sys.exit(0)
        if what == "exit-text":
            sys.exit("bye from " + step)
        if what == "wrong-type":
            return 42
        if what == "chdir":
            os.chdir(os.environ["FSMI_TEST_ELSEWHERE"])


    act("import")


    class Hostile(Method):
        name = "hostile"

        def __init__(self, config=None, device="cpu"):
            super().__init__(config, device)
            act("__init__")

        def preflight(self):
            returned = act("preflight")
            return [] if returned is None else returned

        def setup(self):
            act("setup")

        def weights(self):
            returned = act("weights")
            return {{}} if returned is None else returned

        def edit(self, request):
            act("edit")
            return request.scene

        def close(self):
            act("close")
''')
STEPS = ("import", "__init__", "preflight", "setup", "weights", "edit", "close")
BEHAVIOURS = ("raise", "exit-0", "exit-text")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=1, n_multi=1,
                          mask_types=("full", "circle"))


def _method_file(folder: Path, behaviour: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hostile_method.py"
    path.write_text(HOSTILE_SOURCE.format(behaviour=behaviour))
    return f"{path}:Hostile"


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def _one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("step", STEPS)
def test_a_method_failing_in_any_step_ends_cleanly(bench, tmp_path, monkeypatch, step, behaviour):
    monkeypatch.chdir(tmp_path)
    target = _method_file(tmp_path / "user", {step: behaviour})
    out = tmp_path / "run"
    before = _files(tmp_path)
    result = CliRunner().invoke(main, ["run", "--method", target, "--bench", str(bench), "--out", str(out),
                                       "--no-progress"])
    assert Path.cwd() == tmp_path
    assert not isinstance(result.exception, SystemExit) or result.exit_code in (0, 2)
    if step == "edit":  # one edit's failure is the method's failure on that case; the run goes on
        assert result.exit_code == 0, result.output
        info = json.loads((out / "run.json").read_text())
        assert info["status"] == "complete_with_failures" and info["counts"]["failed"] == 4
        errors = [json.loads(line)["error"] for line in (out / "failures.jsonl").read_text().splitlines()]
        assert len(errors) == 4 and all(("sys.exit" in error) == behaviour.startswith("exit") for error in errors)
        return
    line = _one_line(result)
    if step == "import":
        assert "cannot import" in line and not out.exists()
    elif step == "close":  # the run is done and recorded; the method's clean-up failed
        assert "method hostile: close() raised" in line and "outputs and run.json are complete" in line
        assert json.loads((out / "run.json").read_text())["status"] == "complete"
    else:
        assert f"method hostile: {step}() raised" in line
        assert ("sys.exit" in line) == behaviour.startswith("exit")
        assert not (out / "run.json").exists()  # the claim is released: the folder is free for the next run
        assert not list(out.glob("outputs/*/*.png"))
    assert {name for name in _files(tmp_path) - before if not name.startswith("run/")} == set()


@pytest.mark.parametrize("step", ["preflight", "weights"])
def test_a_step_returning_the_wrong_type_is_one_line(bench, tmp_path, step):
    target = _method_file(tmp_path / "user", {step: "wrong-type"})
    result = CliRunner().invoke(main, ["run", "--method", target, "--bench", str(bench), "--out",
                                       str(tmp_path / "run"), "--no-progress"])
    assert f"method hostile: {step}() returned int" in _one_line(result)
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize("step", ["__init__", "preflight"])
def test_doctor_method_reports_a_failing_step_in_one_line(tmp_path, step):
    target = _method_file(tmp_path / "user", {step: "raise"})
    assert f"method {target}: {step}() raised ValueError" in _one_line(CliRunner().invoke(main, ["doctor", "--method",
                                                                                                  target]))


@pytest.mark.parametrize("step", ["__init__", "setup", "edit", "close"])
def test_a_method_that_changes_the_working_folder_writes_only_into_out(bench, tmp_path, monkeypatch, step):
    """A relative --out and --bench: resolved before the method's code runs, and the working folder restored."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("FSMI_TEST_ELSEWHERE", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench").symlink_to(bench)
    target = _method_file(tmp_path / "user", {step: "chdir"})
    result = CliRunner().invoke(main, ["run", "--method", target, "--bench", "bench", "--out", "run",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert Path.cwd() == tmp_path
    assert _files(tmp_path / "elsewhere") == set()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["counts"]["written"] == 4
    assert not (tmp_path / "run" / "failures.jsonl").exists() or not (tmp_path / "run" / "failures.jsonl").read_text()


def test_the_python_api_raises_the_method_error(bench, tmp_path):
    target = _method_file(tmp_path / "user", {"setup": "exit-0"})
    with pytest.raises(MethodError, match="method hostile: setup\\(\\) raised sys.exit\\(0\\)"):
        fsmi.run_method(METHODS.get(target), bench, out=tmp_path / "run", progress=False)
    target = _method_file(tmp_path / "user2", {"__init__": "raise"})
    with pytest.raises(MethodError, match="method hostile: __init__\\(\\) raised ValueError: broken in __init__"):
        fsmi.run_method(METHODS.get(target), bench, out=tmp_path / "run2", progress=False)
    assert os.getcwd() != str(tmp_path / "user")


def test_entry_point_names_go_through_the_method_name_rule(bench, tmp_path, monkeypatch):
    from fsmi_bench.cli.ls import inventory_lines
    from tests.run.test_method_plugins import _install_distribution

    site = tmp_path / "site"
    bad = ("<b>html</b>", "../../x", "a:b", "/abs", ".hidden")
    points = {name: "fsmi_names_plugin.methods:Darken" for name in (*bad, "fine-name")}
    _install_distribution(site, "fsmi-names-plugin", "1.0", points, package="fsmi_names_plugin")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    lines = inventory_lines("methods")
    for name in bad:
        assert name not in METHODS
        assert any(repr(name) in line and "not a method name" in line for line in lines), (name, lines)
        result = CliRunner().invoke(main, ["run", "--method", name, "--bench", str(bench), "--out", "run",
                                           "--no-progress"])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists() and not (tmp_path.parent / "x").exists()
    assert CliRunner().invoke(main, ["run", "--method", "fine-name", "--bench", str(bench), "--out", "run",
                                     "--no-progress"]).exit_code == 0


def test_quickstart_names_runs_and_results_by_the_method_name_not_the_target(tmp_path, monkeypatch):
    from fsmi_bench.quickstart import QuickstartConfig, quickstart

    user = tmp_path / "elsewhere"
    user.mkdir()
    (user / "m.py").write_text("from fsmi_bench.run.method import Method\n\n\nclass Ok(Method):\n"
                               "    def edit(self, request):\n        return request.scene\n")
    out = tmp_path / "q"
    result = quickstart(QuickstartConfig(out=out, methods=("identity", f"{user / 'm.py'}:Ok"), metrics=("bg_psnr",),
                                         single=1, multi=1, size=64, gallery=False, progress=False))
    assert sorted(path.name for path in (out / "runs").iterdir()) == ["Ok", "identity"]
    assert [path.name for path in result.results] == ["identity.parquet", "Ok.parquet"]
    assert sorted(path.name for path in user.iterdir() if path.name != "__pycache__") == ["m.py"]
    target = f"{user / 'm.py'}:Ok"
    twice = CliRunner().invoke(main, ["quickstart", "--out", str(out), "--methods", f"{target},{target}"])
    assert twice.exit_code == 2 and "more than once" in twice.output
