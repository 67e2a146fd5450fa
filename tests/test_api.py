"""The Python API (``import fsmi_bench as fsmi``) against the commands, on a benchmark built from the
embedded photos: the same outputs, the same results rows, the same report; and the README's example runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import fsmi_bench as fsmi
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import load_mask, load_rgb
from fsmi_bench.run.method import EditRequest, Method

ROOT = Path(__file__).resolve().parents[1]
WEIGHTLESS = ["bg_psnr", "bg_ssim", "fg_psnr", "whole_psnr"]


class Darken(Method):
    """A user's method: darkens the marked region."""

    name = "darken"

    def edit(self, request: EditRequest) -> np.ndarray:
        image = request.scene.astype(np.int16)
        image[request.mask] -= int(self.config.get("amount", 40))
        return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "bench"
    result = CliRunner().invoke(main, ["build", "--out", str(out), "--single", "2", "--multi", "2", "--size", "64",
                                       "--no-previews"])
    assert result.exit_code == 0, result.output
    return out


def test_cases_iterate_with_their_images(bench_dir):
    bench = fsmi.load_benchmark(bench_dir)
    cases = list(bench)
    assert len(bench) == len(cases) == 4 and [case.case_id for case in cases] == sorted(bench.case_ids)
    multi = next(case for case in cases if case.kind == "multi")
    single = next(case for case in cases if case.kind == "single")
    rows = {(row.case_id, row.mask_type): row for row in bench.manifest.rows}
    for case in (multi, single):
        row = rows[(case.case_id, "full")]
        np.testing.assert_array_equal(case.scene, load_rgb(bench_dir / row.scene))
        np.testing.assert_array_equal(case.gt, load_rgb(bench_dir / row.gt))
        assert case.scene.dtype == np.uint8 and case.scene.shape == (case.height, case.width, 3)
        assert set(case.masks) == set(bench.mask_types) and len(case.masks) == 9
        np.testing.assert_array_equal(case.masks["circle"], load_mask(bench_dir / rows[(case.case_id, "circle")].mask))
        assert case.masks["full"].dtype == bool and case.region.shape == case.scene.shape[:2]
        # The edit region is where scene and GT differ (dilated a little by the builder).
        assert (case.scene != case.gt).any(axis=2)[~case.region].sum() == 0
    assert multi.subject is not None and multi.subject.shape[2] == 3 and single.subject is None
    assert bench[multi.case_id] is multi and bench[0] is cases[0]
    assert len(bench.table()) == 4 * 9


def test_a_case_gives_the_request_a_run_gives(bench_dir, tmp_path):
    bench = fsmi.load_benchmark(bench_dir)
    case = next(case for case in bench if case.kind == "multi")
    seen = {}

    class Recorder(Darken):
        name = "recorder"

        def edit(self, request):
            seen[(request.case_id, request.mask_type)] = request
            return super().edit(request)

    fsmi.run_method(Recorder(), bench, out=tmp_path / "run", masks=["circle"], kinds=["multi"], limit=1,
                    seed=3, progress=False)
    ran = seen[(case.case_id, "circle")]
    request = case.request("circle", run_seed=3)
    assert request.seed == ran.seed and request.instruction == ran.instruction and request.op == ran.op
    np.testing.assert_array_equal(request.mask, ran.mask)
    np.testing.assert_array_equal(request.subject, ran.subject)
    with pytest.raises(BadInputError, match="no mask type 'ellipse'"):
        case.request("ellipse")


def _cli(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def _placeless(table: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """A results table without where its run was: the run folder in reasons, and the method's target (a file
    for the command, the test's class for the API) in the provenance."""
    table = table.copy()
    table["reason"] = table["reason"].str.replace(str(run_dir), "RUN", regex=False)
    provenance = [json.loads(text) for text in table["run_provenance"]]
    assert all(item.pop("method_target").endswith(":Darken") for item in provenance if "method_target" in item)
    table["run_provenance"] = [json.dumps(item, sort_keys=True) for item in provenance]
    return table


def _digests(run_dir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run_dir)): path.read_bytes() for path in sorted((run_dir / "outputs").rglob("*.png"))}


def test_api_equals_the_commands(bench_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FSMI_CACHE_DIR", str(tmp_path / "cache"))
    # The user's method as a file, for the command line.
    (tmp_path / "darken.py").write_text(
        "import numpy as np\nfrom fsmi_bench.run.method import Method\n\n\nclass Darken(Method):\n"
        "    name = 'darken'\n\n    def edit(self, request):\n        image = request.scene.astype(np.int16)\n"
        "        image[request.mask] -= int(self.config.get('amount', 40))\n"
        "        return np.clip(image, 0, 255).astype(np.uint8)\n")
    masks = ["full", "circle", "irregular_open"]
    cli_runs = {"darken": tmp_path / "cli" / "darken", "copy-paste": tmp_path / "cli" / "copy-paste"}
    _cli("run", "--method", f"{tmp_path / 'darken.py'}:Darken", "--bench", bench_dir, "--out", cli_runs["darken"],
         "--mask-types", ",".join(masks), "--limit", 3, "--no-progress")
    _cli("run", "--method", "copy-paste", "--bench", bench_dir, "--out", cli_runs["copy-paste"],
         "--mask-types", ",".join(masks), "--limit", 3, "--no-progress")
    for name, run_dir in cli_runs.items():
        scored = _cli("score", "--bench", bench_dir, "--run", run_dir, "--metrics", ",".join(WEIGHTLESS),
                      "--out", tmp_path / "cli" / f"{name}.parquet", "--no-progress")
        # the cases the run did not select are left out and said so, not counted as missing outputs
        assert "missing_output: 0" in scored.output and "which the run did not select (--limit 3 " \
            "--mask-types full,circle,irregular_open)" in scored.output

    bench = fsmi.load_benchmark(bench_dir)
    api_runs = {"darken": fsmi.run_method(Darken(), bench, out=tmp_path / "api" / "darken", masks=masks, limit=3,
                                          progress=False),
                "copy-paste": fsmi.run_method("copy-paste", bench, out=tmp_path / "api" / "copy-paste",
                                              masks=masks, limit=3, progress=False)}
    assert api_runs["darken"].method == "darken" and api_runs["darken"].written == 3 * 3
    tables = {}
    for name, run in api_runs.items():
        assert _digests(run.root) == _digests(cli_runs[name]) != {}
        tables[name] = fsmi.score(run, bench, metrics=WEIGHTLESS, progress=False)
        cli_table = pd.read_parquet(tmp_path / "cli" / f"{name}.parquet")
        assert len(cli_table) == len(tables[name]) > 0 and set(tables[name]["metric"]) == set(WEIGHTLESS)
        assert tables[name]["case_id"].nunique() == 3 and set(tables[name]["status"]) == {"ok"}
        pd.testing.assert_frame_equal(_placeless(tables[name], run.root), _placeless(cli_table, cli_runs[name]))
        # The same file the command writes, at the same default place.
        pd.testing.assert_frame_equal(pd.read_parquet(run.root / "results-paper.parquet"), tables[name])
    assert api_runs["darken"].info["method_target"].endswith("test_api:Darken")

    import fsmi_bench.report  # the report stage's package: its name must not hide the API's function

    assert callable(fsmi.make_report) and fsmi_bench.report.__name__ == "fsmi_bench.report"
    report = fsmi.make_report(list(tables.values()), decimals=2, resamples=200)
    cli_report = _cli("report", tmp_path / "cli" / "darken.parquet", tmp_path / "cli" / "copy-paste.parquet",
                      "--decimals", 2, "--resamples", 200)
    assert report.text.strip() == cli_report.output.strip()
    table1 = next(title for title in report.frames if title.startswith("Table 1"))
    frame = report.frames[table1]
    assert {"fg_psnr", "whole_psnr"} <= set(frame.columns)
    assert {method for _, method in frame.index} == {"darken", "copy-paste (floor)"}
    cells = report.cells[(report.cells["table"] == table1) & (report.cells["metric"] == "fg_psnr")]
    assert np.isfinite(cells["mean"]).all() and (cells["n"] > 0).all()


def test_bad_input_is_one_clear_error(bench_dir, tmp_path):
    with pytest.raises(BadInputError, match="not a benchmark folder"):
        fsmi.load_benchmark(tmp_path / "nothing")
    with pytest.raises(BadInputError, match="mask type 'ellipse' is not in this benchmark"):
        fsmi.run_method(Darken(), bench_dir, out=tmp_path / "run", masks=["ellipse"], progress=False)
    with pytest.raises(BadInputError, match="unknown weight name"):
        fsmi.score(tmp_path / "run", bench_dir, weights={"clip": "x"})
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(BadInputError, match="must be a Method object"):
        fsmi.run_method(object(), bench_dir, out=tmp_path / "run2", progress=False)


def readme_python_example() -> str:
    """The first Python block of the README section on the Python API."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(bench_dir, tmp_path):
    # Run as a user runs it: a fresh interpreter, in a folder holding fsmi-out/bench, no weights.
    (tmp_path / "fsmi-out").mkdir()
    (tmp_path / "fsmi-out" / "bench").symlink_to(bench_dir, target_is_directory=True)
    script = tmp_path / "example.py"
    script.write_text(readme_python_example())
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
                   "FSMI_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
                   "TORCH_HOME": str(tmp_path / "torch")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Table 1" in done.stdout and "darken" in done.stdout and "copy-paste" in done.stdout
    assert (tmp_path / "runs" / "darken" / "run.json").is_file()
    # the mask types the example did not run are left out and said so, not reported as missing outputs
    assert "missing_output" not in done.stdout and "which the run did not select" in done.stderr


def test_no_api_name_is_hidden_by_a_module_of_the_package():
    # ``fsmi_bench.<module>`` becomes an attribute of the package once imported, and would shadow an API
    # name of the same spelling (``fsmi.report`` would be the report stage's package, not a function).
    modules = {path.stem if path.suffix == ".py" else path.name for path in (ROOT / "fsmi_bench").iterdir()
               if (path.suffix == ".py" or (path / "__init__.py").is_file()) and path.stem != "__init__"}
    assert modules and not modules & set(fsmi._API_NAMES)
    assert all(callable(getattr(fsmi, name)) for name in fsmi._API_NAMES)


def test_importing_the_package_and_its_api_loads_nothing_heavy():
    code = ("import sys, fsmi_bench as fsmi; before = 'fsmi_bench.api' in sys.modules; fsmi.load_benchmark; "
            "print(before, 'fsmi_bench.api' in sys.modules, sorted({'numpy', 'pandas', 'torch', 'PIL'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "False True []"
