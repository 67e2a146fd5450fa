"""Hostile method configs: a binary or damaged --config file, and option values of the wrong kind, are one
line and exit 2 from `fsmi run`, before any method is set up or worker started; the run folder is not made."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from fsmi_bench.run.engine import load_method_config
from fsmi_bench.run.option_types import check_option_types
from tests.support.tiny_benchmark import write_tiny_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_tiny_benchmark(tmp_path_factory.mktemp("bench") / "bench", n_single=1, n_multi=1,
                                mask_types=("full",))


def _run(bench, out, method, config_file):
    return CliRunner().invoke(main, ["run", "--method", method, "--bench", str(bench), "--out", str(out),
                                     "--config", str(config_file), "--no-progress"])


def _one_line_exit_2(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("name, content, needle", [
    ("weights.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text"),
    ("model.yaml", b"steps: 2\x00\x01\x02", "is a binary file"),
    ("deep.json", b"[" * 100_000, "nested too deeply"),
    ("bomb.yaml", b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "aliases (*a) are not allowed"),
    ("tabs.yaml", b"steps:\n\t- 2\n", "is not valid YAML"),
    ("keys.yaml", b"1: 2\n", "option names must be strings"),
])
def test_a_config_file_that_is_no_mapping_is_one_line(bench, tmp_path, name, content, needle):
    config = tmp_path / name
    config.write_bytes(content)
    result = _run(bench, tmp_path / "run", "identity", config)
    _one_line_exit_2(result, needle)
    assert not (tmp_path / "run").exists()


def test_a_huge_config_file_is_refused_without_reading_it(tmp_path):
    config = tmp_path / "huge.json"
    with open(config, "wb") as handle:
        handle.truncate(50 << 20)  # sparse: 50 MB of zeros
    with pytest.raises(BadInputError, match="a method config is a small JSON or YAML mapping"):
        load_method_config(config)


@pytest.mark.parametrize("method, options, needle", [
    ("smartedit", {"steps": "abc"}, "smartedit: config key 'steps' must be a whole number of at least 1, not 'abc'"),
    ("anydoor", {"case_timeout_s": [1, 2]}, "anydoor: config key 'case_timeout_s' must be a number above 0"),
    ("largen", {"guide_scale": "7.5"}, "largen: config key 'guide_scale' must be a finite number"),
    ("instructany2pix", {"num_inference_steps": 2.5}, "config key 'num_inference_steps' must be a whole number"),
    ("anydoor", {"python": ["python3"]}, "anydoor: config key 'python' must be a string"),
    ("largen", {"env": {"CUDA_VISIBLE_DEVICES": [0]}}, "config key 'env' must be a mapping of names to strings"),
    ("sd-inpaint", {"num_inference_steps": "abc"}, "config key 'num_inference_steps' must be a whole number"),
    ("instruct-pix2pix", {"image_guidance_scale": {"x": 1}}, "config key 'image_guidance_scale' must be a finite"),
    ("sd-inpaint", {"cpu_offload": "yes"}, "config key 'cpu_offload' must be true or false"),
    ("inpaint", {"dilate": 10**9}, "inpaint: config key 'dilate' must be a whole number of pixels from 0 to 1024"),
    ("inpaint", {"radius": "5"}, "inpaint: config key 'radius' must be a number of pixels above 0"),
    ("copy-paste", {"border": [4]}, "copy-paste: config key 'border' must be a whole number of pixels"),
])
def test_option_values_of_the_wrong_kind_are_one_line_before_any_set_up(bench, tmp_path, method, options, needle):
    config = tmp_path / "config.json"
    # python and checkout point nowhere: the kind check must come first, before any path or weight check
    config.write_text(json.dumps({"python": "/nonexistent/python", "checkout": "/nonexistent", **options}
                                 if method not in ("sd-inpaint", "instruct-pix2pix", "inpaint", "copy-paste") else options))
    result = _run(bench, tmp_path / "run", method, config)
    _one_line_exit_2(result, needle)
    assert not (tmp_path / "run" / "run.json").exists()


def test_option_kinds_accept_what_they_name():
    kinds = {"n": "positive_int", "x": "number", "s": "str", "b": "bool", "env": "str_mapping"}
    check_option_types({"n": 3, "x": 2.5, "s": "a", "b": False, "env": {"A": "1"}, "other": object()}, kinds, "m")
    check_option_types({"n": None}, kinds, "m")  # unset
    for bad in ({"n": True}, {"n": 0}, {"x": float("nan")}, {"b": 1}, {"env": ["A"]}):
        with pytest.raises(BadInputError, match="m: config key"):
            check_option_types(bad, kinds, "m")
