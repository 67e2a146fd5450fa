"""``--data llava:PATH``: LLaVA's visual instruction-tuning data (VQA and conversations), trained with the
language loss only, so that the VLLM keeps its reasoning (paper, Sec. 4.1.1).

Format, as LLaVA's trainer reads it (haotian-liu/LLaVA, ``llava/train/train.py``,
``LazySupervisedDataset.__init__`` and ``__getitem__``): one JSON file holding a list of samples
``{"id": ..., "image": "coco/train2017/000000033471.jpg", "conversations": [{"from": "human", "value":
"<image>\\nWhat are the colors of the bus?"}, {"from": "gpt", "value": "The bus is white and red."}, ...]}``,
the image path relative to an image folder (``--image_folder``; LLaVA-1.5's ``playground/data`` holds the
JSON and the image folders side by side). ``PATH`` is the JSON file (images relative to its folder), or a
folder holding one ``*.json`` (images relative to the folder). As in LLaVA, the JSON is loaded whole at
start and each image is decoded when its sample is drawn.

Each example: the image padded to a square with CLIP's mean colour (LLaVA-1.5's ``image_aspect_ratio:
pad``) as the scene, one ``gpt`` turn drawn at random as the answer, the turns before it as the
context (``TrainingExample.turns``). The prompt is FlexEdit's: "USER: <image> q1 ASSISTANT: a1</s>USER:
q2 ASSISTANT: <img_0>...<img_N> a2</s>", the answer's tokens being the only language-loss targets (as
LLaVA masks the human turns); the images' diffusion loss is left out (``TrainingBatch.diffusion_rows``).
Samples without an image (text-only conversations) and without a human-then-gpt turn are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError

IMAGE_TOKEN = "<image>"  # LLaVA's DEFAULT_IMAGE_TOKEN, in the first human turn


def _turn_pairs(conversations) -> list[tuple[str, str]]:
    """(question, answer) pairs of a conversation, ``<image>`` removed; [] when it does not alternate."""
    if not isinstance(conversations, list) or len(conversations) < 2:
        return []
    pairs = []
    for question, answer in zip(conversations[0::2], conversations[1::2]):
        if not (isinstance(question, dict) and isinstance(answer, dict) and question.get("from") == "human"
                and answer.get("from") == "gpt" and isinstance(question.get("value"), str)
                and isinstance(answer.get("value"), str)):
            return []
        pairs.append((question["value"].replace(IMAGE_TOKEN, "").strip(), answer["value"].strip()))
    return pairs


class ConversationExamples:
    """Example ``i``: a sample drawn by the seed and ``i``, one of its answers as the target."""

    def __init__(self, path: str, resolution: int, seed: int = 0):
        given = Path(path)
        if given.is_dir():
            found = sorted(given.glob("*.json"))
            if len(found) != 1:
                raise BadInputError(f"--data llava:{path}: expected one *.json in the folder, found "
                                    f"{', '.join(file.name for file in found) or 'none'}; name the file")
            given = found[0]
        if not given.is_file():
            raise BadInputError(f"--data llava:{path}: no such JSON file or folder")
        self.json_file, self.image_folder = given, given.parent
        try:
            samples = json.loads(given.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise BadInputError(f"{given}: not valid JSON ({error})") from None
        if not isinstance(samples, list):
            raise BadInputError(f"{given}: LLaVA's format is a JSON list of samples, not {type(samples).__name__}")
        # The index: (image path, turns) of the samples that can train; texts are kept, images are not read.
        self.samples = [(sample["image"], tuple(pairs)) for sample in samples
                        if isinstance(sample, dict) and isinstance(sample.get("image"), str)
                        and (pairs := _turn_pairs(sample.get("conversations")))]
        self.total = len(samples)
        self.resolution, self.seed = resolution, seed

    def __getitem__(self, index: int):
        from flexedit_model.training.data import TRAINING_SEED_OFFSET, TrainingExample

        rng = np.random.default_rng([TRAINING_SEED_OFFSET + self.seed, index])
        number = int(rng.integers(len(self.samples)))
        image_path, pairs = self.samples[number]
        turn = int(rng.integers(len(pairs)))
        scene = self._image(image_path, number)
        empty = np.zeros(scene.shape[:2], bool)
        question, answer = pairs[turn]
        return TrainingExample(f"vqa_{index:06d}", "vqa", "single", scene, scene, empty, empty, question, answer,
                               None, (f"llava:{image_path}",), "llava", turns=pairs[:turn])

    def _image(self, relative: str, number: int) -> np.ndarray:
        from flexedit_model.training.data import _square
        from fsmi_bench.io import load_rgb

        where = f"{self.json_file}: sample {number}"
        if Path(relative).is_absolute() or ".." in Path(relative).parts or "\x00" in relative:
            raise BadInputError(f"{where}: image {relative!r} must be a path inside {self.image_folder}")
        file = self.image_folder / relative
        if not file.is_file():
            raise BadInputError(f"{where}: image {relative} not found under {self.image_folder}")
        return _square(pad_to_square(load_rgb(file)), self.resolution)


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """LLaVA-1.5's ``expand2square``: the image centred on a square of CLIP's mean colour."""
    from flexedit_model.vllm import CLIP_MEAN

    height, width = image.shape[:2]
    side = max(height, width)
    square = np.empty((side, side, 3), np.uint8)
    square[:] = [int(value * 255) for value in CLIP_MEAN]
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = image
    return square


def conversation_prompt(tokenizer, llava_config, num_image_tokens: int, example):
    """The ``VllmPrompt`` of a vqa example: its image, its earlier turns, its question; answer = the
    ``<img_i>`` tokens, then the answer text and EOS, the text alone being the loss target."""
    from flexedit_model.tokenizer import IMAGE_PLACEHOLDER
    from flexedit_model.vllm import VllmPrompt, image_token_ids, patches_per_image

    def text(value: str) -> list[int]:
        return tokenizer(value, add_special_tokens=False).input_ids

    ids = [tokenizer.bos_token_id] + text("USER: ")
    ids += [tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)] * patches_per_image(llava_config) + text("\n")
    for question, answer in example.turns:
        ids += text(f"{question} ASSISTANT: {answer}") + [tokenizer.eos_token_id] + text("USER: ")
    ids += text(f"{example.instruction} ASSISTANT: ")
    answer = image_token_ids(tokenizer, num_image_tokens) + text(example.label) + [tokenizer.eos_token_id]
    return VllmPrompt(ids, answer, [example.scene], loss_from=num_image_tokens)


def open_llava(path: str, recipe) -> ConversationExamples:
    examples = ConversationExamples(path, recipe.resolution, recipe.seed)
    if not examples.samples:
        raise BadInputError(f"--data llava:{path}: none of its {examples.total} sample(s) has an image and "
                            "alternating human / gpt turns, so there is no VQA example to train on")
    return examples
