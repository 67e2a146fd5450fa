"""The run engine, run folders and `fsmi run` / `fsmi ls`: resume, failures, shards, sizes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.io import load_rgb, read_jsonl
from fsmi_bench.run.engine import (
    RunConfig,
    derive_seed,
    load_method_config,
    map_to_scene_size,
    resolve_shard,
    run_method,
    select_rows,
    select_work,
)
from fsmi_bench.run.folder import Shard, load_run, parse_shard
from fsmi_bench.run.method import METHODS
from tests.support.run_fixtures import FailWhileMarked, HalfSize, make_benchmark, output_digests

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_RUN_KEYS = {"method", "method_config", "weights", "package_versions", "git_commit", "seed",
                     "benchmark_dir", "benchmark_version", "manifest_sha256", "size_mapping", "shard",
                     "created_at", "fsmi_version"}

METHODS.register("tests-seeded-noise", "tests.support.run_fixtures:SeededNoise", "test only: seeded noise in the mask")
METHODS.register("tests-needs-weights", "tests.support.run_fixtures:NeedsWeights", "test only: weights never present",
                 needs=("weights",))


def _subprocess_environment() -> dict:
    # The child imports the package from this checkout and the test methods from tests/support/run_fixtures.py.
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=3, n_multi=3)


def _config(bench: Path, out: Path, **changes) -> RunConfig:
    return RunConfig(**{"method": "identity", "bench": bench, "out": out, "progress": False, **changes})


def test_identity_run_writes_contract_layout(bench, tmp_path):
    summary = run_method(_config(bench, tmp_path / "run"))
    benchmark = load_benchmark(bench)
    assert (summary.selected, summary.written, summary.failed) == (18, 18, 0)
    for row in benchmark.rows:
        output = load_rgb(tmp_path / "run" / "outputs" / row.case_id / f"{row.mask_type}.png")
        np.testing.assert_array_equal(output, load_rgb(bench / row.scene))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert CONTRACT_RUN_KEYS <= set(info)
    assert info["manifest_sha256"] == benchmark.manifest_sha256 and info["status"] == "complete"
    assert info["package_versions"]["numpy"] == np.__version__
    assert read_jsonl(tmp_path / "run" / "failures.jsonl") == []
    run = load_run(tmp_path / "run")
    assert run.method == "identity" and run.failures == {}
    assert run.output_path("multi_0001", "circle").is_file()


def test_second_run_skips_everything_and_redoes_a_corrupt_output(bench, tmp_path):
    run_method(_config(bench, tmp_path / "run"))
    before = output_digests(tmp_path / "run")
    damaged = tmp_path / "run" / "outputs" / "single_0002" / "circle.png"
    damaged.write_bytes(damaged.read_bytes()[:50])  # a truncated PNG must not count as done
    summary = run_method(_config(bench, tmp_path / "run"))
    assert (summary.written, summary.skipped) == (1, 17)
    assert output_digests(tmp_path / "run") == before


def test_outputs_are_deterministic_and_follow_the_seed(bench, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_method(_config(bench, tmp_path / name, method="tests-seeded-noise", seed=seed))
    assert output_digests(tmp_path / "a") == output_digests(tmp_path / "b")
    differing = [key for key, digest in output_digests(tmp_path / "c").items()
                 if output_digests(tmp_path / "a")[key] != digest]
    assert len(differing) == 18
    assert derive_seed(3, 1000, "full") == derive_seed(3, 1000, "full") != derive_seed(3, 1000, "circle")


def test_resume_after_sigkill_gives_the_outputs_of_an_uninterrupted_run(bench, tmp_path):
    """Start `fsmi run` in a subprocess, SIGKILL it mid-run, start it again: same bytes as a clean run."""
    config_file = tmp_path / "slow.json"
    config_file.write_text(json.dumps({"delay_s": 0.08}))
    killed = tmp_path / "killed"
    script = ("import sys; from fsmi_bench.run.method import METHODS; "
              "METHODS.register('tests-seeded-noise', 'tests.support.run_fixtures:SeededNoise'); "
              "from fsmi_bench.cli.run import command; command(sys.argv[1:])")
    command = [sys.executable, "-c", script, "--method", "tests-seeded-noise", "--bench", str(bench),
               "--out", str(killed), "--seed", "7", "--config", str(config_file), "--no-progress"]
    environment = _subprocess_environment()
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((killed / "outputs").rglob("*.png"))) < 5:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_when_killed = len(list((killed / "outputs").rglob("*.png")))
    assert 5 <= done_when_killed < 18, "the run must be killed part-way"
    assert json.loads((killed / "run.json").read_text())["status"] == "running"

    finished = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert f"{18 - done_when_killed} written, {done_when_killed} already done" in finished.stdout
    assert not list((killed / "outputs").rglob("*.tmp"))

    run_method(_config(bench, tmp_path / "clean", method="tests-seeded-noise", seed=7,
                       method_config={"delay_s": 0.0}))
    assert output_digests(killed) == output_digests(tmp_path / "clean")
    assert len(output_digests(killed)) == 18


def test_one_failing_case_is_recorded_the_run_goes_on_and_a_rerun_retries_it(bench, tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    config = _config(bench, tmp_path / "run", method="fail-while-marked",
                     method_config={"fail_case": "multi_0002", "marker": str(marker)})
    method = FailWhileMarked(config.method_config)
    summary = run_method(config, method=method)
    assert (summary.written, summary.failed) == (15, 3)
    failures = read_jsonl(tmp_path / "run" / "failures.jsonl")
    assert {(row["case_id"], row["mask_type"]) for row in failures} == {
        ("multi_0002", mask_type) for mask_type in ("full", "circle", "rectangle_open")}
    assert "RuntimeError: cannot edit multi_0002" in failures[0]["error"]
    assert load_run(tmp_path / "run").failures[("multi_0002", "full")].startswith("RuntimeError")

    marker.unlink()
    summary = run_method(config, method=FailWhileMarked(config.method_config))
    assert (summary.written, summary.skipped, summary.failed) == (3, 15, 0)
    assert read_jsonl(tmp_path / "run" / "failures.jsonl") == []
    assert load_run(tmp_path / "run").failures == {}


def test_shards_cover_every_case_once_and_merge(bench, tmp_path):
    benchmark = load_benchmark(bench)
    taken = [select_rows(benchmark, shard=Shard(index, 4)) for index in range(4)]
    cases = [sorted({row.case_id for row in rows}) for rows in taken]
    assert sorted(case for shard_cases in cases for case in shard_cases) == benchmark.case_ids()
    assert all(len(rows) == 3 * len(shard_cases) for rows, shard_cases in zip(taken, cases))

    for index in range(4):
        run_method(_config(bench, tmp_path / "sharded", method="tests-seeded-noise", shard=Shard(index, 4)))
    run_method(_config(bench, tmp_path / "whole", method="tests-seeded-noise"))
    assert output_digests(tmp_path / "sharded") == output_digests(tmp_path / "whole")
    assert not (tmp_path / "sharded" / "run.json").exists()
    assert (tmp_path / "sharded" / "run.shard-3-of-4.json").is_file()
    assert (tmp_path / "sharded" / "failures.shard-0-of-4.jsonl").is_file()
    merged = load_run(tmp_path / "sharded")
    assert merged.method == "tests-seeded-noise" and len(merged.info["shards"]) == 4
    assert [info["shard"]["index"] for info in merged.info["shards"]] == [0, 1, 2, 3]


def test_accelerate_launch_ranks_become_shards(bench, tmp_path, monkeypatch):
    assert resolve_shard(None, {"WORLD_SIZE": "3", "RANK": "2"}) == Shard(2, 3)
    assert resolve_shard(Shard(0, 2), {}) == Shard(0, 2)
    assert resolve_shard(None, {"WORLD_SIZE": "1", "RANK": "0"}) is None
    with pytest.raises(BadInputError, match="not both"):
        resolve_shard(Shard(0, 2), {"WORLD_SIZE": "2", "RANK": "0"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        run_method(_config(bench, tmp_path / "ranks"))
    assert len(output_digests(tmp_path / "ranks")) == 18
    assert len(load_run(tmp_path / "ranks").info["shards"]) == 2


def test_outputs_of_another_size_are_mapped_back_and_recorded(bench, tmp_path):
    run_method(_config(bench, tmp_path / "run", method="half-size", kinds=("single",), mask_types=("full",)),
               method=HalfSize())
    benchmark = load_benchmark(bench)
    for row in select_rows(benchmark, mask_types=("full",), kinds=("single",)):
        output = load_rgb(tmp_path / "run" / "outputs" / row.case_id / "full.png")
        assert output.shape == (row.height, row.width, 3)
        expected = np.asarray(
            __import__("PIL.Image", fromlist=["Image"]).fromarray(load_rgb(bench / row.scene)[::2, ::2]).resize(
                (row.width, row.height), resample=3))  # 3 = bicubic
        np.testing.assert_array_equal(output, expected)
    resized = load_run(tmp_path / "run").info["size_mapping"]["resized"]
    assert resized == {f"single_000{index}/full": [20, 16] for index in (1, 2, 3)}


def test_map_to_scene_size_accepts_grey_and_rgba_and_refuses_floats():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image, original = map_to_scene_size(grey, 4, 3)
    assert image.shape == (3, 4, 3) and original is None and (image[..., 1] == grey).all()
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    assert map_to_scene_size(rgba, 8, 6)[1] == (4, 3)
    with pytest.raises(BadInputError, match="uint8"):
        map_to_scene_size(np.zeros((3, 4, 3), dtype=np.float32), 4, 3)
    with pytest.raises(BadInputError, match="shape"):
        map_to_scene_size(np.zeros((3, 4, 2), dtype=np.uint8), 4, 3)


def test_selection_options(bench, tmp_path):
    benchmark = load_benchmark(bench)
    rows = select_rows(benchmark, mask_types=("circle",), kinds=("multi",), limit=2)
    assert [(row.case_id, row.mask_type) for row in rows] == [("multi_0001", "circle"), ("multi_0002", "circle")]
    assert [row.mask_type for row in select_rows(benchmark)[:3]] == ["full", "circle", "rectangle_open"]
    with pytest.raises(BadInputError, match="did you mean 'rectangle_open'"):
        select_rows(benchmark, mask_types=("rectangle-open",))
    with pytest.raises(BadInputError, match="unknown kind"):
        select_rows(benchmark, kinds=("both",))
    with pytest.raises(BadInputError, match="0 <= i < n"):
        parse_shard("4/4")
    with pytest.raises(BadInputError, match="expected i/n"):
        parse_shard("first")


def test_select_work_names_each_edit_with_its_output_and_seed(bench, tmp_path):
    # Shard positions are taken in the whole sorted case list (multi_0001..3, single_0001..3), before the
    # kinds filter and the limit: multi, first 2 cases, shard 1/2 -> multi_0002 only.
    benchmark = load_benchmark(bench)
    config = _config(bench, tmp_path / "run", kinds=("multi",), limit=2, mask_types=("circle", "full"), seed=5)
    work = select_work(benchmark, config, Shard(1, 2))
    assert [(item.key.case_id, item.key.mask_type) for item in work] == [("multi_0002", "full"),
                                                                          ("multi_0002", "circle")]
    for item in work:
        assert item.output == tmp_path / "run" / "outputs" / "multi_0002" / f"{item.row.mask_type}.png"
        assert item.seed == derive_seed(5, item.row.seed, item.row.mask_type)
        assert item.key.label == f"multi_0002/{item.row.mask_type}"
    assert not (tmp_path / "run").exists()  # selecting reads and writes nothing
    assert select_work(benchmark, config, Shard(0, 2)) == [
        item for item in select_work(benchmark, config, None) if item.row.case_id == "multi_0001"]

    run_method(_config(bench, tmp_path / "done", limit=1))
    info = json.loads((tmp_path / "done" / "run.json").read_text())
    assert sorted(info) == sorted(CONTRACT_RUN_KEYS | {"seed_rule", "output_encoding", "selection", "device",
                                                       "status", "finished_at", "counts", "invocations"})
    assert info["counts"] == {"selected": 3, "written": 3, "skipped": 0, "failed": 0}
    assert info["selection"] == {"mask_types": None, "kinds": ["single", "multi"], "limit": 1}
    assert info["shard"] is None and info["size_mapping"]["resized"] == {}


def test_a_folder_holding_another_run_is_refused_and_left_intact(bench, tmp_path):
    run_method(_config(bench, tmp_path / "run", method="tests-seeded-noise", seed=1))
    before = output_digests(tmp_path / "run")
    for changes in ({"seed": 2}, {"method": "identity"}, {"method_config": {"delay_s": 0.0}}):
        with pytest.raises(BadInputError, match="already holds another run"):
            run_method(_config(bench, tmp_path / "run", **{"method": "tests-seeded-noise", "seed": 1, **changes}))
    assert output_digests(tmp_path / "run") == before


def test_method_config_files(tmp_path):
    (tmp_path / "a.yaml").write_text("steps: 2\nguidance: 7.5\n")
    (tmp_path / "b.json").write_text('{"steps": 2}')
    (tmp_path / "c.json").write_text("[1, 2]")
    assert load_method_config(tmp_path / "a.yaml") == {"steps": 2, "guidance": 7.5}
    assert load_method_config(tmp_path / "b.json") == {"steps": 2}
    with pytest.raises(BadInputError, match="mapping"):
        load_method_config(tmp_path / "c.json")
    with pytest.raises(BadInputError, match="cannot read config"):
        load_method_config(tmp_path / "missing.json")


def test_missing_weights_stop_the_run_with_their_message(bench, tmp_path):
    with pytest.raises(MissingWeightsError, match="FSMI_TEST_WEIGHTS"):
        run_method(_config(bench, tmp_path / "run", method="tests-needs-weights"))
    assert not list((tmp_path / "run").rglob("*.png"))


# --- the command line -------------------------------------------------------------------------------------


@pytest.fixture()
def cli():
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(arg) for arg in args])


def test_cli_run_and_resume(cli, bench, tmp_path):
    result = cli("run", "--method", "copy-paste", "--bench", bench, "--out", tmp_path / "run",
                 "--kinds", "multi", "--mask-types", "full,circle", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "6 selected, 6 written, 0 already done, 0 failed" in result.output
    result = cli("run", "--method", "copy-paste", "--bench", bench, "--out", tmp_path / "run",
                 "--kinds", "multi", "--mask-types", "full", "--mask-types", "circle", "--no-progress")
    assert "0 written, 6 already done" in result.output


@pytest.mark.parametrize("case", ["unknown_method", "missing_weights", "unwritable_out", "tampered_bench",
                                  "other_run", "bad_shard"])
def test_cli_bad_input_is_one_line_and_exit_2(cli, bench, tmp_path, case):
    out = tmp_path / "run"
    arguments = ["run", "--method", "identity", "--bench", bench, "--out", out, "--no-progress"]
    expected = {"unknown_method": "did you mean 'copy-paste'", "missing_weights": "FSMI_TEST_WEIGHTS",
                "unwritable_out": "cannot write to output folder", "tampered_bench": "no longer matches",
                "other_run": "already holds another run", "bad_shard": "expected i/n"}[case]
    if case == "unknown_method":
        arguments[2] = "copypaste"
    elif case == "missing_weights":
        arguments[2] = "tests-needs-weights"
    elif case == "unwritable_out":
        (tmp_path / "a-file").write_text("")
        arguments[6] = tmp_path / "a-file" / "run"  # a folder cannot be made inside a file, even by root
    elif case == "tampered_bench":
        copy = make_benchmark(tmp_path / "bench", n_single=1, n_multi=1)
        scene = copy / "cases" / "single_0001" / "scene.png"
        scene.write_bytes(scene.read_bytes()[:-1] + b"\x00")
        arguments[4] = copy
    elif case == "other_run":
        run_method(_config(bench, out, method="tests-seeded-noise", limit=1))
    elif case == "bad_shard":
        arguments += ["--shard", "two"]
    before = sorted(path.name for path in tmp_path.rglob("*"))
    result = cli(*arguments)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    if case in ("other_run", "tampered_bench"):
        assert sorted(path.name for path in tmp_path.rglob("*")) == before  # nothing lost or added


def test_ls_methods_lists_needs_without_importing_torch(tmp_path):
    script = ("import sys; from fsmi_bench.cli import main\n"
              "try:\n    main(['ls', 'methods'])\nexcept SystemExit:\n    pass\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n"
              "assert 'baselines.identity' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                            env=_subprocess_environment(), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("methods")
    identity = next(line for line in lines if line.split()[0] == "identity")
    assert "needs nothing" in identity
    assert "identity" in result.stdout and "copy-paste" in result.stdout and "inpaint" in result.stdout


def test_ls_all_lists_sources_and_mask_conditions(cli):
    result = cli("ls")
    assert result.exit_code == 0, result.output
    assert "sources" in result.output and "mini" in result.output
    assert "circle_open" in result.output and "irregular" in result.output


def test_a_relative_out_folder_holds_the_outputs_that_score_reads(bench, tmp_path, monkeypatch):
    # As the README types it: `fsmi run --out runs/x` from the current folder, then `fsmi score --run runs/x`.
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSMI_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["run", "--method", "identity", "--bench", str(bench), "--out", "runs/x",
                                       "--limit", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "runs" / "x").iterdir() if not path.name.startswith(".")) == [
        "failures.jsonl", "outputs", "run.json"]
    mask_types = {row.mask_type for row in load_benchmark(bench).rows}
    assert len(list((tmp_path / "runs" / "x" / "outputs").rglob("*.png"))) == len(mask_types)
    scored = CliRunner().invoke(main, ["score", "--bench", str(bench), "--run", "runs/x", "--metrics", "fg_psnr",
                                       "--no-progress"])
    # The first case (multi_0001) has its outputs, found by score; the cases left out by --limit have none.
    assert scored.exit_code == 0 and f"(ok: {len(mask_types)}," in scored.output, scored.output
