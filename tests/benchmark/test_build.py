"""fsmi build: the benchmark's files, manifest, determinism, tags, and its refusals of bad input."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark, composite_case
from fsmi_bench.benchmark.manifest import load_benchmark
from fsmi_bench.benchmark.masks import MASK_CONDITIONS
from fsmi_bench.benchmark.sources import load_source
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError, IntegrityError
from fsmi_bench.io import load_mask, load_rgb

SMALL = dict(single=6, multi=6, size=128)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory) -> Path:
    return build_benchmark(BuildConfig(out=tmp_path_factory.mktemp("b") / "bench", **SMALL), progress=False)


def test_manifest_has_one_row_per_case_and_mask_condition(small_bench):
    benchmark = load_benchmark(small_bench, verify=True)
    assert len(benchmark.case_ids()) == 12
    assert len(benchmark.rows) == 12 * 9
    for case_id in benchmark.case_ids():
        assert [row.mask_type for row in benchmark.rows_for(case_id)] == list(MASK_CONDITIONS)
    for row in benchmark.rows:
        assert row.kind in ("single", "multi") and row.op in ("add", "replace", "remove")
        assert row.scenario in ("indoor", "outdoor")
        assert (row.complexity in ("simple", "complex")) == (row.kind == "multi")
        assert (row.subject is not None) == (row.kind == "multi")
        assert row.instruction and row.label and row.clip_text
        assert 0.0 <= row.mask_iou <= 1.0 and 0.0 <= row.mask_coverage <= 1.0
        assert max(row.width, row.height) == 128
        assert row.benchmark_version and isinstance(row.mask_params, dict)
        assert load_mask(small_bench / row.mask).shape == (row.height, row.width)
    full = [row for row in benchmark.rows if row.mask_type == "full"]
    assert all(row.mask_iou == 1.0 for row in full)


def test_region_holds_every_changed_pixel_and_the_edit_changes_something(small_bench):
    benchmark = load_benchmark(small_bench, verify=False)
    for case_id in benchmark.case_ids():
        row = benchmark.rows_for(case_id)[0]
        scene, gt = load_rgb(small_bench / row.scene), load_rgb(small_bench / row.gt)
        region = load_mask(small_bench / row.region)
        changed = np.any(scene != gt, axis=2)
        assert changed.sum() > 0.5 * region.sum() * 0.3, case_id
        assert not (changed & ~region).any(), case_id


def test_scene_and_subject_come_from_different_photos(small_bench):
    for row in load_benchmark(small_bench, verify=False).rows:
        scene_photo = row.origins["scene"].split(":")[1]
        for key in ("object", "replaced_object"):
            if key in row.origins:
                assert row.origins[key].split(":")[1].split("/")[0] != scene_photo


def test_build_is_byte_identical_and_cases_do_not_depend_on_count(small_bench, tmp_path):
    again = build_benchmark(BuildConfig(out=tmp_path / "again", **SMALL), progress=False)
    assert tree_digest(again) == tree_digest(small_bench)
    fewer = build_benchmark(BuildConfig(out=tmp_path / "fewer", single=2, multi=1, size=128, workers=1,
                                        previews=False), progress=False)
    for name in ("cases/single_0001/gt.png", "cases/multi_0001/masks/triangle_open.png"):
        assert (fewer / name).read_bytes() == (small_bench / name).read_bytes()


def test_other_seed_gives_other_cases(tmp_path):
    content = load_source("mini")
    first = composite_case(content, "multi", 0, seed=0, size=128)
    second = composite_case(content, "multi", 0, seed=1, size=128)
    assert first.seed != second.seed
    assert not np.array_equal(first.gt, second.gt) or first.instruction != second.instruction


def test_default_build_counts_and_tags(tmp_path):
    bench = build_benchmark(BuildConfig(out=tmp_path / "full", size=96, previews=False), progress=False)
    rows = load_benchmark(bench, verify=False).rows
    cases = {row.case_id: row for row in rows}
    kinds = Counter(row.kind for row in cases.values())
    assert kinds == {"single": 80, "multi": 125}
    assert Counter(row.mask_type for row in rows) == {t: 205 for t in MASK_CONDITIONS}
    single_ops = Counter(r.op for r in cases.values() if r.kind == "single")
    assert set(single_ops) == {"add", "replace", "remove"} and min(single_ops.values()) >= 26
    multi_tags = Counter((r.op, r.complexity) for r in cases.values() if r.kind == "multi")
    assert len(multi_tags) == 4 and min(multi_tags.values()) >= 30
    assert Counter(r.scenario for r in cases.values())["outdoor"] >= 80
    card = (bench / "README.md").read_text()
    assert "| multi | replace | outdoor | complex |" in card and "irregular_open" in card
    assert "CC0 by Rachel Michetti" in card  # origins and licences are in the card


def test_previews_are_written(small_bench):
    for name in ("previews/masks.png", "previews/cases.png"):
        assert load_rgb(small_bench / name).shape[0] > 100


def test_tampered_file_and_escaping_path_are_refused(small_bench, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_bench, copy)
    (copy / "cases/single_0001/gt.png").write_bytes(b"not a png")
    with pytest.raises(IntegrityError, match="single_0001/gt.png"):
        load_benchmark(copy)
    lines = (small_bench / "manifest.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["scene"] = "../../etc/passwd"
    shutil.rmtree(copy)
    shutil.copytree(small_bench, copy)
    (copy / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(BadInputError, match="outside"):
        load_benchmark(copy)


def run_cli(*args):
    result = CliRunner().invoke(main, list(map(str, args)))
    return result.exit_code, result.output


def test_cli_bad_input_gives_one_line_and_nonzero_exit(small_bench, tmp_path):
    code, output = run_cli("build", "--source", "minni", "--out", tmp_path / "x")
    assert code == 2 and "did you mean 'mini'" in output and "Traceback" not in output
    code, output = run_cli("build", "--out", small_bench)
    assert code == 2 and "not empty" in output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, output = run_cli("build", "--out", blocker / "bench", "--single", 1, "--multi", 0)
    assert code == 2 and "cannot write" in output
    assert not any(p.name.startswith(".bench.building") for p in tmp_path.iterdir())
    code, output = run_cli("show", small_bench, "multi_9999", "--out", tmp_path / "c.png")
    assert code == 2 and "no case 'multi_9999'" in output


def test_show_writes_a_case_sheet(small_bench, tmp_path):
    code, output = run_cli("show", small_bench, "multi_0002", "--out", tmp_path / "case.png")
    assert code == 0, output
    sheet = load_rgb(tmp_path / "case.png")
    # scene, subject, GT, region and 9 masks: 13 tiles in rows of 7
    assert sheet.shape[1] > 7 * 150 and sheet.shape[0] > 2 * 150


def test_generate_masks_reproduces_build_and_reseeds(small_bench, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_bench, copy)
    before = tree_digest(copy / "cases")
    code, output = run_cli("generate-masks", "--bench", copy)
    assert code == 0, output
    assert tree_digest(copy / "cases") == before
    assert (copy / "manifest.jsonl").read_bytes() == (small_bench / "manifest.jsonl").read_bytes()
    code, output = run_cli("generate-masks", "--bench", copy, "--types", "circle,triangle_open", "--seed", 5)
    assert code == 0, output
    after = tree_digest(copy / "cases")
    changed = {name for name in set(after) | set(before) if after.get(name) != before.get(name)}
    # New masks are written beside the old ones (the manifest is swapped last), the old ones then removed.
    assert changed and all(re.search(r"/(circle|triangle_open)(\.[0-9a-f]{12})?\.png$", name) for name in changed)
    load_benchmark(copy, verify=True)  # the manifest follows the new masks
    code, output = run_cli("generate-masks", "--bench", copy, "--types", "circel")
    assert code == 2 and "did you mean 'circle'" in output


def test_generate_masks_for_a_folder_of_images(tmp_path):
    from fsmi_bench.io import save_png

    images, regions = tmp_path / "images", tmp_path / "regions"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        save_png(images / f"{name}.png", rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
        region = np.zeros((80, 100), bool)
        region[20:50, 30:70] = True
        save_png(regions / f"{name}.png", region)
    code, output = run_cli("generate-masks", "--images", images, "--regions", regions, "--out", tmp_path / "out",
                           "--types", "circle,irregular_open")
    assert code == 0, output
    assert load_mask(tmp_path / "out/a/circle.png").shape == (80, 100)
    assert len((tmp_path / "out/masks.jsonl").read_text().splitlines()) == 4
    assert load_rgb(tmp_path / "out/contact_sheet.png").shape[0] > 100
    save_png(regions / "b.png", np.zeros((80, 100), bool))
    code, output = run_cli("generate-masks", "--images", images, "--regions", regions, "--out", tmp_path / "o2")
    assert code == 2 and "empty" in output
    save_png(regions / "b.png", np.ones((10, 10), bool))
    code, output = run_cli("generate-masks", "--images", images, "--regions", regions, "--out", tmp_path / "o2")
    assert code == 2 and "10x10" in output
    (images / "b.png").write_bytes(b"broken")
    code, output = run_cli("generate-masks", "--images", images, "--regions", regions, "--out", tmp_path / "o2")
    assert code == 2 and "cannot read image" in output and "Traceback" not in output


def test_help_and_every_command_help_import_no_heavy_library():
    import subprocess
    import sys

    script = ("import sys; from fsmi_bench.cli import main\n"
              "for args in (['--help'], ['ls'], *[[name, '--help'] for name in main.commands]):\n"
              "    try:\n        main(args)\n    except SystemExit as exit:\n        assert exit.code == 0, args\n"
              "heavy = {'torch', 'numpy', 'pandas', 'PIL', 'cv2', 'transformers', 'diffusers'} & set(sys.modules)\n"
              "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "quickstart" in result.stdout and "Examples:" in result.stdout


@pytest.mark.parametrize("export_format", ["hf", "fsmi"])
def test_exported_benchmark_builds_back_to_the_same_files(small_bench, tmp_path, export_format):
    from fsmi_bench.benchmark.export import export_fsmi, export_hf

    exporter = {"hf": export_hf, "fsmi": export_fsmi}[export_format]
    exporter(small_bench, tmp_path / export_format, progress=False)
    source = f"{export_format}:{tmp_path / export_format}"
    rebuilt = build_benchmark(BuildConfig(out=tmp_path / "again", source=source, previews=False), progress=False)
    original, again = tree_digest(small_bench / "cases"), tree_digest(rebuilt / "cases")
    assert again == original  # scenes, subjects, subject masks, GT, regions and all 9 drawn masks
    rows = load_benchmark(rebuilt).rows
    assert len(rows) == 12 * 9 and {row.source for row in rows} == {source}
    subject_masks = {row.case_id: (row.subject_mask, row.subject_mask_sha256) for row in rows}
    expected = {row.case_id: (row.subject_mask, row.subject_mask_sha256) for row in load_benchmark(small_bench).rows}
    assert subject_masks == expected and sum(path is not None for path, _ in expected.values()) == 6


@pytest.fixture(scope="module")
def multi_bench(tmp_path_factory) -> Path:
    return build_benchmark(BuildConfig(out=tmp_path_factory.mktemp("m") / "bench", single=6, multi=25, size=128,
                                       previews=False), progress=False)


def test_every_composited_object_has_a_plausible_size_and_stands_on_the_lower_part_of_its_scene(multi_bench):
    from fsmi_bench.benchmark.compose import BASE_BAND, HEIGHT_RANGES, fits_scene
    from fsmi_bench.benchmark.sources.mini import PHOTOS

    content = load_source("mini")
    sizes = {f"mini:{obj.object_id}": obj.size for obj in content.objects}
    rows = {row.case_id: row for row in load_benchmark(multi_bench, verify=False).rows}
    assert sum(row.kind == "multi" for row in rows.values()) == 25
    for case_id, row in rows.items():
        roles = {"object", "replaced_object"} & set(row.origins)
        assert set(row.placement) == roles, case_id
        boxes = np.zeros((row.height, row.width), bool)
        for role in roles:
            place, size = row.placement[role], sizes[row.origins[role]]
            assert place["size"] == size and place["height_range"] == list(HEIGHT_RANGES[size])
            assert place["base_band"] == list(BASE_BAND)
            low, high = HEIGHT_RANGES[size]
            assert low <= place["height"] / row.height <= high, (case_id, role, place)
            assert BASE_BAND[0] <= (place["y"] + place["height"]) / row.height <= BASE_BAND[1], (case_id, role)
            assert place["x"] >= 0 and place["y"] >= 0 and place["x"] + place["width"] <= row.width
            assert fits_scene(size, PHOTOS[row.origins["scene"].split(":")[1]].holds), (case_id, role)
            margin = 6  # the soft edge (3 px) and the region's dilation (2 px)
            boxes[max(0, place["y"] - margin):place["y"] + place["height"] + margin,
                  max(0, place["x"] - margin):place["x"] + place["width"] + margin] = True
        # the record is where the pixels changed
        assert not (load_mask(multi_bench / row.region) & ~boxes).any(), case_id


def test_the_card_counts_in_integers_and_explains_open_mask_iou(multi_bench):
    card = (multi_bench / "README.md").read_text()
    counts = re.findall(r"^\| (?:single|multi) \|.*\| (\S+) \|$", card, flags=re.MULTILINE)
    rows = re.findall(r"^\| (?:full|circle|irregular_open) \| (\S+) \|", card, flags=re.MULTILINE)
    assert counts and rows and all(value.isdigit() for value in counts + rows), (counts, rows)
    assert sum(map(int, counts)) == 31 and rows == ["31"] * 3
    assert ".0 |" not in card
    assert "its IoU with the region is the IoU of that outline" in card
    assert "Each row's `placement` records the box and the rule" in card


def test_a_benchmark_of_the_previous_version_is_refused_with_what_changed(small_bench, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(small_bench, copy)
    manifest = copy / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"fsmi-edit-1.1"', '"fsmi-edit-1.0"'))
    with pytest.raises(BadInputError) as caught:
        load_benchmark(copy, verify=False)
    message = str(caught.value)
    assert "fsmi-edit-1.0" in message and "rebuild it with `fsmi build`" in message and "plausible sizes" in message
    code, output = run_cli("run", "--method", "identity", "--bench", copy, "--out", tmp_path / "run")
    assert code == 2 and len(output.strip().splitlines()) == 1 and "fsmi-edit-1.0" in output
