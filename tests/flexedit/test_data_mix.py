"""``fsmi train flexedit --data SPEC=WEIGHT ...``: several sources mixed by weight, deterministic given the
seed; bad weights are one line and exit 2 with nothing written; two sources train end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from flexedit_model.training.data_mix import DataSource, MixedExamples, parse_data
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from tests.support.coco_folder import write_coco_folder


class Labelled:
    """An example set whose example i says which set it came from (the mixture only indexes it)."""

    def __init__(self, name):
        self.name = name

    def __getitem__(self, index):
        return (self.name, index)


def test_parse_data_reads_specs_and_weights(tmp_path):
    assert parse_data("mini") == [DataSource("mini", 1.0)]
    assert parse_data(["mini=0.3", f"coco:{tmp_path}/a=b=0.7"]) == [DataSource("mini", 0.3),
                                                                     DataSource(f"coco:{tmp_path}/a=b", 0.7)]
    assert parse_data(["mini=1e-1", "hf:/data/x=0"]) == [DataSource("mini", 0.1), DataSource("hf:/data/x", 0.0)]


@pytest.mark.parametrize("weights", [(0.3, 0.7), (1.0, 2.0, 0.0, 5.0)])
def test_drawn_shares_match_the_weights_within_the_binomial_tolerance(weights):
    draws = 20_000
    mixture = MixedExamples([Labelled(index) for index in range(len(weights))], weights, seed=3)
    counts = np.bincount([mixture[index][0] for index in range(draws)], minlength=len(weights))
    for count, weight in zip(counts, weights):
        share = weight / sum(weights)
        # 5 standard deviations of a binomial count: a false alarm about once in 3.5 million draws of the test.
        tolerance = 5 * math.sqrt(draws * share * (1 - share))
        assert abs(count - draws * share) <= tolerance, (counts, weights)
        if weight == 0:
            assert count == 0
    # The source's own example i is the one returned: each source keeps its own examples.
    assert all(mixture[index][1] == index for index in range(50))


def test_the_seed_fixes_the_order_and_another_seed_changes_it():
    parts = [Labelled("coco"), Labelled("fsmi")]
    order = [MixedExamples(parts, (0.3, 0.7), seed=0)[index][0] for index in range(400)]
    assert order == [MixedExamples(parts, (0.3, 0.7), seed=0)[index][0] for index in range(400)]
    assert order != [MixedExamples(parts, (0.3, 0.7), seed=1)[index][0] for index in range(400)]
    # Example i does not depend on which examples were drawn before it (resume and shards see the same).
    assert [MixedExamples(parts, (0.3, 0.7), seed=0)[index][0] for index in range(399, 200, -1)] == order[399:200:-1]


@pytest.mark.parametrize("values, message", [
    (["mini=-0.5"], "the weight must be a finite number, 0 or more, got -0.5"),
    (["mini=0", "fsmi:/data/x=0"], "weights sum to 0"),
    (["mini=lots"], "the weight 'lots' is not a number"),
    (["mini=nan"], "the weight must be a finite number"),
    (["imagenet:/data/x=1"], "unknown source 'imagenet'"),
    (["mini=1", "mini=2"], "given twice"),
    (["=0.5"], "no source before '='"),
])
def test_bad_data_is_one_line_exit_2_and_writes_nothing(tmp_path, values, message):
    with pytest.raises(BadInputError, match=message):
        parse_data(values)
    out = tmp_path / "run"
    arguments = ["train", "flexedit", "--config", "tiny", "--out", str(out), "--steps", "1"]
    for value in values:
        arguments += ["--data", value]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --data") and message in lines[0]
    assert not out.exists()


def test_a_source_that_does_not_load_is_one_line_before_a_model_is_built(tmp_path, monkeypatch):
    from flexedit_model.training import loop

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the sources were read")

    monkeypatch.setattr(loop, "_build_trainer", no_model)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "flexedit", "--config", "tiny", "--out", str(out), "--steps", "1",
                                       "--data", "mini=0.5", "--data", f"coco:{tmp_path / 'nowhere'}=0.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "nowhere" in result.output
    assert not out.exists()


def test_help_shows_the_mixing_syntax_with_an_example():
    result = CliRunner().invoke(main, ["train", "flexedit", "--help"])
    assert result.exit_code == 0
    assert "SPEC[=WEIGHT]" in result.output
    assert "--data coco:/data/coco=0.3 --data fsmi:/data/edits=0.7" in result.output


@pytest.mark.usefixtures("one_thread")
def test_two_sources_train_end_to_end_at_tiny_size(tmp_path):
    from dataclasses import replace

    from flexedit_model.config import load_config
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.data_mix import MixedExamples
    from flexedit_model.training.loop import _training_examples, train_flexedit
    from flexedit_model.training.settings import TrainingSettings

    coco = write_coco_folder(tmp_path / "coco")
    data = ["mini=0.4", f"coco:{coco}=0.6"]
    config = load_config("tiny")
    config = replace(config, training={**config.training, "batch_size": 2})
    examples = _training_examples(config, TrainingSettings.from_config(config.training), parse_data(data))
    assert isinstance(examples, MixedExamples)
    # The first two steps' examples: which source each came from, as their origins say.
    origins = [examples[index].origins[0].split(":")[0] for index in range(4)]
    expected = ["mini" if examples.source_of(index) == 0 else "coco" for index in range(4)]
    assert origins == expected and set(expected) == {"mini", "coco"}

    summary = train_flexedit(config, data, tmp_path / "run", steps=2, progress=False)
    assert summary.steps == 2 and all(math.isfinite(loss) for loss in summary.losses)
    recorded = json.loads((tmp_path / "run" / "train.json").read_text())["data"]
    assert recorded == [{"source": "mini", "weight": 0.4}, {"source": f"coco:{coco}", "weight": 0.6}]
    assert FlexEditPipeline.from_pretrained(summary.pipeline_dir).config.resolution == config.resolution


def test_one_source_gives_exactly_the_examples_it_gave_before():
    from flexedit_model.config import load_config
    from flexedit_model.training.data import TrainingExamples, load_training_content
    from flexedit_model.training.loop import _training_examples
    from flexedit_model.training.settings import TrainingSettings

    config = load_config("tiny")
    settings = TrainingSettings.from_config(config.training)
    content = load_training_content("mini", "train")
    examples = _training_examples(config, settings, parse_data("mini"), content)
    assert type(examples) is TrainingExamples
    direct = TrainingExamples(content, config.resolution, settings.seed, settings.mask_task_fraction,
                              settings.multi_fraction, mask_task_mix=dict(settings.mask_task_mix))
    for index in range(3):
        assert np.array_equal(examples[index].target, direct[index].target)
        assert examples[index].instruction == direct[index].instruction
