"""The paper's training data in its published formats (stand-ins in tests/support/paper_data.py): each kind
gives the examples its format holds, from its training split only; a source without examples of its kind is
one line, exit 2, before a model is built; a mix of all kinds trains end to end, each step's kinds in loss.csv."""

from __future__ import annotations

import csv
import json
import math
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from flexedit_model.training.sources import Recipe, open_examples
from fsmi_bench.cli import main
from fsmi_bench.errors import BadInputError
from tests.support import paper_data
from tests.support.coco_folder import write_coco_folder
from tests.support.flexedit_inputs import GPU_SETTINGS, paper_config, write_paper_weights

RECIPE = Recipe(resolution=32, seed=0, mask_task_fraction=0.5, multi_fraction=0.5, mask_task_mix=None)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The paper config's bases as stand-ins in their shipped formats (float16 llava-hf LLaVA, SD 1.5, CLIP)."""
    return write_paper_weights(tmp_path_factory.mktemp("user-weights"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-data")
    return {"coco": write_coco_folder(root / "coco"),
            "refcoco": paper_data.write_refcoco(root / "refer"),
            "grefcoco": paper_data.write_refcoco(root / "grefer", grefcoco=True),
            "magicbrush": paper_data.write_magicbrush(root / "MagicBrush"),
            "ip2p": paper_data.write_ip2p(root / "instructpix2pix-clip-filtered"),
            "llava": paper_data.write_llava(root / "llava"),
            "fsmi": paper_data.write_fsmi_cases(root / "edits")}


def box_mask(box, width=paper_data.WIDTH, height=paper_data.HEIGHT):
    mask = np.zeros((height, width), bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def test_refcoco_says_a_train_expression_of_the_referent_never_mirrored(data):
    from flexedit_model.training.data import MASK_TASK_INSTRUCTION

    with open(data["refcoco"] / "refs(unc).p", "rb") as handle:
        refs = pickle.load(handle)
    train = {sentence["sent"] for ref in refs if ref["split"] == "train" for sentence in ref["sentences"]}
    val_images = {ref["image_id"] for ref in refs if ref["split"] != "train"}
    examples = open_examples(f"refcoco:{data['refcoco']}", RECIPE)
    for index in range(24):
        example = examples[index]
        assert example.task == "mask" and example.instruction == MASK_TASK_INSTRUCTION
        assert example.label in train and example.source_kind == "refcoco"
        assert int(example.origins[0].split(":")[1].split("/")[0]) not in val_images
        # The left dog's box is x 4-24 of 64, the right one's x 40-60: "left" stays left (no flip).
        columns = np.nonzero(example.region.any(axis=0))[0]
        assert (columns.max() < 16) if "left" in example.label else (columns.min() >= 16), example.label
        assert (example.mask & example.region).any()
        assert np.array_equal(example.target[..., 0] > 127, example.region)


def test_grefcoco_unites_its_referents_and_leaves_out_no_target_expressions(data):
    examples = open_examples(f"refcoco:{data['grefcoco']}", RECIPE)
    labels = [examples[index] for index in range(40)]
    assert "the cat" not in {example.label for example in labels}  # ann_id [-1]: nothing to draw
    both = [example for example in labels if example.label == "both dogs"]
    assert both and all(example.region[:, :12].any() and example.region[:, 20:].any() for example in both)


def test_magicbrush_region_is_the_erased_alpha_of_the_train_rows(data):
    from flexedit_model.training.data import _square_mask

    examples = open_examples(f"magicbrush:{data['magicbrush']}", RECIPE)
    for index in range(12):
        example = examples[index]
        row = int(example.origins[0].rsplit(" ", 1)[1])
        assert example.task == "edit" and example.label == "" and example.subject is None
        assert example.instruction == f"put a hat on the dog {row}"  # never the dev split's "make the sky pink"
        # mask_img is twice the source's size, RGBA, transparent over the box (10 + row, 12)-(34 + row, 36).
        assert np.array_equal(example.region, _square_mask(box_mask((10 + row, 12, 34 + row, 36)), 32))
        assert not np.array_equal(example.scene, example.target)


def test_ip2p_region_is_where_the_pair_differs(data):
    from flexedit_model.training.data import _square_mask

    examples = open_examples(f"ip2p:{data['ip2p']}", RECIPE)
    expected = _square_mask(box_mask((30, 20, 50, 40)), 32)
    for index in range(6):
        example = examples[index]
        assert example.instruction == "make the car red" and example.label == ""
        overlap = (example.region & expected).sum() / (example.region | expected).sum()
        assert overlap > 0.8, overlap


def test_llava_examples_answer_one_turn_after_the_ones_before(data):
    samples = json.loads(data["llava"].read_text())
    examples = open_examples(f"llava:{data['llava']}", RECIPE)
    seen_turns = set()
    for index in range(16):
        example = examples[index]
        sample = next(item for item in samples if example.origins[0] == f"llava:{item.get('image')}")
        turns = [(question["value"].replace("<image>", "").strip(), answer["value"])
                 for question, answer in zip(sample["conversations"][0::2], sample["conversations"][1::2])]
        position = len(example.turns)
        assert list(example.turns) + [(example.instruction, example.label)] == turns[:position + 1]
        assert example.task == "vqa" and not example.mask.any() and example.scene.shape == (32, 32, 3)
        seen_turns.add(position)
    assert seen_turns == {0, 1}
    # A 48 x 32 photo is padded to a square with CLIP's mean colour, as LLaVA-1.5 pads it.
    padded = next(examples[index] for index in range(40) if examples[index].origins[0].endswith("000000000001.jpg"))
    assert padded.scene[0, 16].tolist() == [122, 116, 104]


def test_fsmi_cases_train_as_edit_pairs_from_their_training_split(data):
    from flexedit_model.training.data import fsmi_bench_split

    examples = open_examples(f"fsmi:{data['fsmi']}", RECIPE)
    drawn = [examples[index] for index in range(20)]
    ids = {example.origins[0].split(":", 1)[1] for example in drawn}
    assert ids and all(fsmi_bench_split(case_id) == "train" for case_id in ids)
    assert all(example.label == "cup" and example.task == "edit" for example in drawn)
    assert all((example.subject is not None) == (example.kind == "multi") for example in drawn)
    assert {example.kind for example in drawn} == {"single", "multi"}


def test_an_exported_benchmark_in_an_hf_folder_trains_as_edit_pairs(data):
    from flexedit_model.training.data import fsmi_bench_split
    from flexedit_model.training.sources.objects import examples_of_content
    from fsmi_bench.benchmark.sources.fsmi_folder import load_fsmi_folder

    content = load_fsmi_folder(str(data["fsmi"]))  # the cases an hf: export holds, as load_hf_disk gives them
    examples = examples_of_content(content, "hf:/data/export", RECIPE)
    drawn = [examples[index] for index in range(10)]
    assert all(example.task == "edit" and example.source_kind == "hf" for example in drawn)
    assert all(fsmi_bench_split(example.origins[0].split(":", 1)[1]) == "train" for example in drawn)


def test_coco_is_indexed_at_start_and_decoded_when_drawn(data, monkeypatch):
    import fsmi_bench.io
    from flexedit_model.training.data import load_training_content
    from flexedit_model.training.sources.pooled import POOL_OBJECTS, POOL_SCENES

    decoded = []
    original = fsmi_bench.io.load_rgb
    monkeypatch.setattr(fsmi_bench.io, "load_rgb", lambda path: decoded.append(path) or original(path))
    examples = open_examples(f"coco:{data['coco']}", RECIPE)
    assert decoded == []  # the annotations are indexed; no photo is read at start
    examples[0]
    assert 0 < len(decoded) <= POOL_OBJECTS + POOL_SCENES
    # The same objects are held out as when the folder is read whole.
    eager = {obj.object_id for obj in load_training_content(f"coco:{data['coco']}", "train").objects}
    streamed = {examples.stream.object(index).object_id for index in range(examples.stream.object_count)}
    assert streamed == eager


def test_a_refs_pickle_that_asks_for_a_class_is_refused(tmp_path, data):
    import shutil

    folder = shutil.copytree(data["refcoco"], tmp_path / "refcoco")
    (folder / "refs(unc).p").write_bytes(pickle.dumps([{"split": "train", "payload": BadInputError("x")}]))
    with pytest.raises(BadInputError, match=r"asks for fsmi_bench\.errors\.BadInputError"):
        open_examples(f"refcoco:{folder}", RECIPE)


def write_without_column(path):
    import datasets

    datasets.DatasetDict({"train": datasets.load_from_disk(str(path))["train"].remove_columns("mask_img")}
                         ).save_to_disk(str(path.parent / "no-mask"))
    return path.parent / "no-mask"


def only_text_llava(path):
    file = path.parent / "text-only.json"
    file.write_text(json.dumps([{"id": "1", "conversations": [{"from": "human", "value": "hi"},
                                                              {"from": "gpt", "value": "hello"}]}]))
    return file


@pytest.mark.parametrize("kind, make, message", [
    ("magicbrush", write_without_column, "lacks the column(s) mask_img of MagicBrush"),
    ("ip2p", lambda path: path.parent / "edits", "is not a folder written by datasets' save_to_disk"),
    ("llava", only_text_llava, "so there is no VQA example"),
    ("refcoco", lambda path: path.parent / "MagicBrush", "holds no refs(<split>).p"),
])
def test_a_source_without_examples_of_its_kind_is_one_line_before_a_model_is_built(data, tmp_path, monkeypatch,
                                                                                     kind, make, message):
    from flexedit_model.training import loop

    monkeypatch.setattr(loop, "_build_trainer", lambda *args: pytest.fail("the model was built first"))
    path = make(data[kind] if kind != "refcoco" else data["magicbrush"])
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "flexedit", "--config", "tiny", "--out", str(out), "--steps", "1",
                                       "--data", "mini=0.5", "--data", f"{kind}:{path}=0.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_an_fsmi_folder_whose_cases_are_all_held_out_is_one_line(tmp_path):
    from flexedit_model.training.data import fsmi_bench_split

    folder = paper_data.write_fsmi_cases(tmp_path / "edits", cases=30)
    lines = (folder / "cases.jsonl").read_text().splitlines()
    held = [line for line in lines if fsmi_bench_split(json.loads(line)["case_id"]) == "heldout"]
    (folder / "cases.jsonl").write_text("\n".join(held) + "\n")
    with pytest.raises(BadInputError, match=rf"none of its {len(held)} edit case\(s\) is in the training split"):
        open_examples(f"fsmi:{folder}", RECIPE)


@pytest.mark.usefixtures("one_thread")
def test_conversations_train_the_language_loss_only_and_unlabelled_pairs_the_diffusion_loss_only(data):
    import torch

    from flexedit_model.build import build_components, build_scheduler
    from flexedit_model.config import load_config
    from flexedit_model.training.loop import set_trainable
    from flexedit_model.training.losses import collate_examples, flexedit_loss

    config = load_config("tiny")
    model, vae, tokenizer = build_components(config, seed=0, device="cpu")
    set_trainable(model, config)
    vqa = open_examples(f"llava:{data['llava']}", RECIPE)
    batch = collate_examples([vqa[0], vqa[1]], tokenizer, model)
    assert batch.diffusion_rows.tolist() == [0.0, 0.0] and batch.kinds == ("llava/vqa", "llava/vqa")
    # The loss targets are the answer's tokens and EOS: not the <img_i> tokens, not the question.
    answer = tokenizer(vqa[0].label, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert batch.vllm.labels[0][batch.vllm.labels[0] != -100].tolist() == answer
    parts = flexedit_loss(model, vae, build_scheduler(config, "ddpm"), batch, torch.Generator().manual_seed(0))
    parts.total.backward()
    assert parts.diffusion.item() == 0.0 and parts.language.item() > 0
    unet_grads = [parameter.grad for parameter in model.unet.parameters() if parameter.requires_grad]
    assert all(grad is None or not grad.any() for grad in unet_grads)
    assert any(parameter.grad is not None and parameter.grad.any()
               for name, parameter in model.vllm.named_parameters() if "lora_" in name)

    model.zero_grad(set_to_none=True)
    pairs = open_examples(f"magicbrush:{data['magicbrush']}", RECIPE)
    batch = collate_examples([pairs[0], pairs[1]], tokenizer, model)
    assert not batch.language_targets and batch.diffusion_rows.tolist() == [1.0, 1.0]
    parts = flexedit_loss(model, vae, build_scheduler(config, "ddpm"), batch, torch.Generator().manual_seed(0))
    assert parts.language.item() == 0.0 and math.isfinite(parts.total.item()) and parts.diffusion.item() > 0


def mix_arguments(data, extra=()):
    weights = {"coco": 0.2, "refcoco": 0.2, "magicbrush": 0.2, "ip2p": 0.1, "llava": 0.2, "fsmi": 0.1}
    arguments = list(extra)
    for kind, weight in weights.items():
        arguments += ["--data", f"{kind}:{data[kind]}={weight}"]
    return arguments


def expected_kinds(config, arguments, first: int, count: int) -> list[str]:
    """The kinds of examples ``first`` to ``first + count - 1`` of the mix ``arguments``, as loss.csv names them."""
    from flexedit_model.training.data_mix import build_examples, parse_data
    from flexedit_model.training.settings import TrainingSettings

    sources = parse_data([value for value in arguments if "=" in value and ":" in value])
    examples = build_examples(config, TrainingSettings.from_config(config.training), sources)
    return [f"{examples[index].source_kind}/{examples[index].task}" for index in range(first, first + count)]


@pytest.mark.usefixtures("one_thread")
def test_a_mix_of_every_kind_trains_tiny_end_to_end_with_each_steps_kinds_logged(data, tmp_path):
    from flexedit_model.config import load_config

    out = tmp_path / "run"
    arguments = mix_arguments(data, ["train", "flexedit", "--config", "tiny", "--out", str(out), "--steps", "3"])
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    with open(out / "loss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2, 3]
    assert all(math.isfinite(float(row["loss"])) for row in rows)
    # Each step's row names the kinds of that step's examples, in order (batch 4: examples 4s .. 4s + 3).
    config = load_config("tiny")
    for step, row in enumerate(rows):
        assert row["kinds"].split(" ") == expected_kinds(config, arguments, 4 * step, 4)
    kinds = set(expected_kinds(config, arguments, 0, 80))
    assert {"coco/mask", "coco/edit", "refcoco/mask", "magicbrush/edit", "ip2p/edit", "llava/vqa",
            "fsmi/edit"} <= kinds
    recorded = json.loads((out / "train.json").read_text())["data"]
    assert [entry["source"].partition(":")[0] for entry in recorded] == ["coco", "refcoco", "magicbrush", "ip2p",
                                                                          "llava", "fsmi"]


@pytest.mark.usefixtures("one_thread")
def test_the_readme_mix_of_coco_and_edit_cases_trains(data, tmp_path):
    # README: --data coco:/data/coco=0.3 --data fsmi:/data/edits=0.7 (an fsmi folder of edit cases)
    result = CliRunner().invoke(main, ["train", "flexedit", "--config", "tiny", "--out", str(tmp_path / "run"),
                                       "--steps", "1", "--data", f"coco:{data['coco']}=0.3",
                                       "--data", f"fsmi:{data['fsmi']}=0.7"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


@pytest.mark.usefixtures("one_thread", "own_accelerate_state")
def test_the_same_mix_trains_the_paper_config_on_the_stand_in_weights(data, weights, tmp_path):
    from flexedit_model.config import load_config
    from flexedit_model.training.loop import train_flexedit

    # batch 2 and 32 px, the paper's LoRA / frozen-base set-up, and what the GPU script trains with: bf16 autocast
    # (the float16 LLaVA kept in bfloat16), gradient checkpointing, 4 micro-batches per step.
    config = paper_config(weights, training={"steps": 2, "log_every": 1, "checkpoint_every": 2})
    paper = load_config("paper")
    assert {key: config.training[key] for key in GPU_SETTINGS} == {key: paper.training[key] for key in GPU_SETTINGS}
    accumulation = config.training["gradient_accumulation_steps"]
    assert config.training["mixed_precision"] == "bf16" and config.training["gradient_checkpointing"]
    assert accumulation > 1
    arguments = mix_arguments(data)
    summary = train_flexedit(config, [value for value in arguments if value != "--data"], tmp_path / "run",
                             progress=False)
    assert summary.steps == 2 and all(math.isfinite(loss) for loss in summary.losses)
    run = json.loads((tmp_path / "run" / "train.json").read_text())
    assert run["frozen_dtypes"] == {"vllm": "bfloat16", "image_encoder": "bfloat16", "vae": "bfloat16"}
    with open(tmp_path / "run" / "loss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A step's row names the kinds of all its micro-batches in order: 2 x 4 examples, those of step s being
    # examples 8s .. 8s + 7 of the mix.
    per_step = 2 * accumulation
    assert [int(row["step"]) for row in rows] == [1, 2]
    for step, row in enumerate(rows):
        assert row["kinds"].split(" ") == expected_kinds(config, arguments, per_step * step, per_step)
