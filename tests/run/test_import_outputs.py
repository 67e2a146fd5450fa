"""Outputs made elsewhere imported into a run folder, then scored like any run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import load_rgb, read_jsonl, save_png, sha256_file
from fsmi_bench.metrics.specs import WEIGHTLESS_METRICS
from fsmi_bench.run.engine import RunConfig, run_method
from fsmi_bench.run.folder import load_run
from fsmi_bench.run.import_outputs import ImportConfig, import_outputs
from fsmi_bench.scoring.score_run import ScoreConfig, score_run
from tests.support.run_fixtures import make_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=2, n_multi=1)


def _scenes_as_outputs(bench: Path, folder: Path) -> dict[tuple[str, str], Path]:
    """What `identity` outputs, written by "someone else's code" in the folder layout."""
    benchmark = load_benchmark(bench)
    written = {}
    for row in benchmark.rows:
        path = folder / row.case_id / f"{row.mask_type}.png"
        save_png(path, load_rgb(benchmark.path(row.scene)))
        written[(row.case_id, row.mask_type)] = path
    return written


def _config(bench: Path, source: Path, out: Path, **changes) -> ImportConfig:
    return ImportConfig(**{"bench": bench, "source": source, "method_name": "mine", "out": out,
                           "progress": False, **changes})


def _score(bench: Path, run: Path):
    frame, _ = score_run(ScoreConfig(bench=bench, run=run, metrics=tuple(WEIGHTLESS_METRICS), use_cache=False,
                                     out=run / "results.parquet"))
    return frame


def test_imported_outputs_score_exactly_as_the_same_outputs_run_here(bench, tmp_path):
    _scenes_as_outputs(bench, tmp_path / "theirs")
    summary = import_outputs(_config(bench, tmp_path / "theirs", tmp_path / "imported"))
    benchmark = load_benchmark(bench)
    assert (summary.expected, summary.imported, summary.missing, summary.invalid) == (len(benchmark.rows),) * 2 + (0, 0)
    run_method(RunConfig(method="identity", bench=bench, out=tmp_path / "identity", progress=False))

    imported = _score(bench, tmp_path / "imported")
    reference = _score(bench, tmp_path / "identity")
    assert set(imported["method"]) == {"mine"} and (imported["status"] == "ok").all()
    columns = ["case_id", "mask_type", "metric", "value", "status"]
    assert imported[columns].equals(reference[columns])
    for row in benchmark.rows:  # re-encoded as the engine encodes: byte-identical files
        assert sha256_file(tmp_path / "imported/outputs" / row.case_id / f"{row.mask_type}.png") == \
            sha256_file(tmp_path / "identity/outputs" / row.case_id / f"{row.mask_type}.png")


def test_run_json_records_source_hashes_missing_invalid_and_resizes(bench, tmp_path):
    written = _scenes_as_outputs(bench, tmp_path / "theirs")
    keys = sorted(written)
    missing_key, truncated_key, small_key, gray_key = keys[0], keys[1], keys[2], keys[3]
    written[missing_key].unlink()
    data = written[truncated_key].read_bytes()
    written[truncated_key].write_bytes(data[: len(data) // 2])
    scene = load_rgb(written[small_key])
    Image.fromarray(scene).resize((scene.shape[1] // 2, scene.shape[0] // 2)).save(written[small_key])
    Image.fromarray(load_rgb(written[gray_key])).convert("L").save(written[gray_key])
    (tmp_path / "theirs" / "notes.txt").write_text("not an output")

    out = tmp_path / "imported"
    summary = import_outputs(_config(bench, tmp_path / "theirs", out))
    assert (summary.missing, summary.invalid, summary.resized, summary.unmatched) == (1, 1, 1, 1)

    info = json.loads((out / "run.json").read_text())
    label = "{}/{}".format
    assert info["provenance"] == "imported" and info["method"] == "mine"
    imported = info["imported"]
    assert imported["source"] == str((tmp_path / "theirs").resolve()) and imported["layout"] == "folder"
    assert imported["missing"] == [label(*missing_key)]
    assert list(imported["invalid"]) == [label(*truncated_key)]
    assert imported["unmatched"] == ["notes.txt"]
    assert imported["files"][label(*gray_key)]["original_mode"] == "L"
    for key in keys[2:]:
        assert imported["files"][label(*key)]["sha256"] == sha256_file(written[key])
    height, width = scene.shape[:2]
    assert info["size_mapping"]["resized"] == {label(*small_key): [width // 2, height // 2]}
    assert info["status"] == "complete_with_failures" and info["counts"]["failed"] == 2

    run = load_run(out)
    assert set(run.failures) == {missing_key, truncated_key}
    assert run.failures[missing_key].startswith("missing:") and run.failures[truncated_key].startswith("invalid:")
    frame = _score(bench, out)
    statuses = frame.groupby(["case_id", "mask_type"])["status"].agg(set).to_dict()
    # Not failed edits: a missing file is a missing output, an unreadable one a bad output, each with its reason.
    assert statuses[missing_key] == {"missing_output"} and statuses[truncated_key] == {"bad_output"}
    reasons = frame.groupby(["case_id", "mask_type"])["reason"].first().to_dict()
    assert reasons[missing_key].startswith("missing: no output file") and "does not decode" in reasons[truncated_key]
    assert statuses[gray_key] == statuses[small_key] == {"ok"}
    gray_output = load_rgb(out / "outputs" / gray_key[0] / f"{gray_key[1]}.png")
    assert (gray_output[..., 0] == gray_output[..., 1]).all()


def test_csv_layout_and_reimport_replaces_the_earlier_import(bench, tmp_path):
    written = _scenes_as_outputs(bench, tmp_path / "anywhere")
    keys = sorted(written)
    lines = ["case_id,mask_type,path"] + [f"{case},{mask},anywhere/{case}/{mask}.png" for case, mask in keys]
    lines.append("no_such_case,full,anywhere/x.png")
    (tmp_path / "outputs.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "imported"
    summary = import_outputs(_config(bench, tmp_path / "outputs.csv", out))
    assert (summary.imported, summary.unmatched) == (len(keys), 1)
    info = json.loads((out / "run.json").read_text())
    assert info["imported"]["layout"] == "csv"
    assert info["imported"]["source_sha256"] == sha256_file(tmp_path / "outputs.csv")

    # Again with one row fewer: its earlier output must go, or the scorer would take it as this import's.
    (tmp_path / "outputs.csv").write_text("\n".join(lines[:-2]) + "\n")
    summary = import_outputs(_config(bench, tmp_path / "outputs.csv", out))
    assert (summary.imported, summary.missing) == (len(keys) - 1, 1)
    case, mask = keys[-1]
    assert not (out / "outputs" / case / f"{mask}.png").exists()
    assert [row["case_id"] for row in read_jsonl(out / "failures.jsonl")] == [case]


def test_selection_limits_what_counts_as_missing(bench, tmp_path):
    benchmark = load_benchmark(bench)
    folder = tmp_path / "theirs"
    for row in benchmark.rows:
        if row.kind == "multi" and row.mask_type == "full":
            save_png(folder / row.case_id / "full.png", load_rgb(benchmark.path(row.scene)))
    summary = import_outputs(_config(bench, folder, tmp_path / "imported", kinds=("multi",), mask_types=("full",)))
    assert (summary.expected, summary.imported, summary.missing) == (1, 1, 0)


@pytest.mark.parametrize("problem, message", [
    ("missing source", "no such folder or file"),
    ("csv without path column", "needs the columns case_id, mask_type, path"),
    ("csv with duplicate rows", "a second row for"),
    ("another run in out", "made by `fsmi run`"),
    ("empty name", "--method-name"),
    ("markup in the name", "--method-name"),  # run.json would refuse it later; refused before any work
])
def test_bad_input_is_refused(bench, tmp_path, problem, message):
    source, out, name = tmp_path / "theirs", tmp_path / "out", "mine"
    source.mkdir()
    if problem == "missing source":
        source = tmp_path / "nowhere"
    elif problem == "csv without path column":
        source = tmp_path / "o.csv"
        source.write_text("case_id,mask_type,file\n")
    elif problem == "csv with duplicate rows":
        source = tmp_path / "o.csv"
        row = load_benchmark(bench).rows[0]
        source.write_text(f"case_id,mask_type,path\n{row.case_id},{row.mask_type},a.png\n"
                          f"{row.case_id},{row.mask_type},b.png\n")
    elif problem == "another run in out":
        run_method(RunConfig(method="identity", bench=bench, out=out, progress=False, kinds=("multi",)))
    elif problem == "empty name":
        name = " "
    elif problem == "markup in the name":
        name = "<b>mine</b>"
    with pytest.raises(BadInputError, match=message):
        import_outputs(_config(bench, source, out, method_name=name))
    if problem != "another run in out":
        assert not (out / "run.json").exists()
