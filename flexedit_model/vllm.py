"""The VLLM: LLaVA (transformers ``LlavaForConditionalGeneration``) with N added ``<img_i>`` tokens and LoRA.

What the VLLM sees (Sec. 3.1 of the paper: x1, x2, m and the instruction):
- image 1: the scene with the user's mask painted over it (pixels inside the mask blended halfway to
  cyan), so that the mask reaches the language model as a visual prompt, the way a user draws it.
  Cyan, not the usual red: red is common in photos (the `mini` source's ARC2017 bin, its joke book, a
  red shirt), where a red tint barely changes the pixels. Over the 15 objects of `mini`, a half-way
  tint changes the pixels under the mask by 107 to 213 (mean L1 over RGB, per object) with red and
  by 169 to 276 with cyan;
- image 2 (multi-image edits only): the subject;
- the instruction.
Its answer is ``<img_0> ... <img_{N-1}>`` followed by ``The mask means '<label>'``; the last-layer
hidden states at the N ``<img_i>`` positions go to the Q-Former.

Why the ``<img_i>`` tokens come first, right after the prompt (the paper writes the text first): the
language model is causal, so the states at the ``<img_i>`` positions depend only on what precedes them.
Placed first, those states are a function of (images, instruction) alone, identical in training
(teacher-forced answer) and at inference, where they come out of ONE forward pass over the prompt and
the N tokens, with no answer to generate first. Placed after the label, training would condition them
on the ground-truth label while inference would condition them on a greedily generated one (exposure
bias), and every edit would pay for generating the text. The label text after the tokens still gives
the language loss of Eq. 2, which also shapes those states: the label is predicted from positions
that attend to them. The text answer is generated only when asked for (``return_answer``).

The loss leaves out the predictions made at the prompt's end and at the ``<img_i>`` positions (the
tokens ``<img_0> ... <img_{N-1}>`` and the first word after them): they are the same for every example,
since the tokens are appended, never generated, and learning constants would only push the ``<img_i>``
states, which carry the mask to the UNet, towards constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flexedit_model.tokenizer import IMAGE_PLACEHOLDER, image_token_names

MASK_TINT_RGB = (0, 255, 255)
# CLIP's normalisation, used by LLaVA's and CLIP's image processors alike.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def scratch_llava_config(section: dict, tokenizer):
    """A ``LlavaConfig`` of the sizes in a ``"source": "scratch"`` vllm section, for ``tokenizer``'s vocabulary."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=section["hidden_size"],
        intermediate_size=section["intermediate_size"], num_hidden_layers=section["num_hidden_layers"],
        num_attention_heads=section["num_attention_heads"], num_key_value_heads=section["num_key_value_heads"],
        max_position_embeddings=section["max_position_embeddings"], pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=section["vision_hidden_size"], intermediate_size=section["vision_intermediate_size"],
        num_hidden_layers=section["vision_num_hidden_layers"],
        num_attention_heads=section["vision_num_attention_heads"], image_size=section["vision_image_size"],
        patch_size=section["vision_patch_size"], projection_dim=section["hidden_size"],
    )
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER),
        vision_feature_layer=-1, vision_feature_select_strategy="default", tie_word_embeddings=False,
    )


def inject_lora(llava, rank: int, alpha: int) -> None:
    """Add LoRA (peft) to the language model's attention projections, in place.

    In-place injection keeps the module a plain ``LlavaForConditionalGeneration``, so the LoRA weights
    are ordinary entries of FlexEditModel's state dict and travel in its safetensors file.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)")
    inject_adapter_in_model(config, llava)


def patches_per_image(llava_config) -> int:
    """Image placeholder tokens per image: one per ViT patch (the CLS token is dropped, strategy "default")."""
    vision = llava_config.vision_config
    return (vision.image_size // vision.patch_size) ** 2


def mark_mask(scene: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The scene (RGB uint8) with mask pixels (bool, True = marked) blended halfway to cyan: the visual prompt."""
    marked = scene.astype(np.float32)
    tint = np.asarray(MASK_TINT_RGB, dtype=np.float32)
    marked[mask] = 0.5 * marked[mask] + 0.5 * tint
    return np.round(marked).astype(np.uint8)


def clip_pixels(images: list[np.ndarray], size: int) -> torch.Tensor:
    """RGB uint8 images -> float tensor (B, 3, size, size), bicubic resize, CLIP mean/std normalisation."""
    # Images of one batch may differ in size (scene and subject), so each is resized on its own.
    pixels = torch.cat([
        _resize(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float(), size)
        for image in images
    ]) / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels.clamp(0, 1) - mean) / std


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-2:] == (size, size):
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False,
                                           antialias=True)


def answer_text(label: str) -> str:
    """The text part of the VLLM's answer (Sec. 3.3): names what the mask means."""
    return f"The mask means '{label}'"


@dataclass(frozen=True)
class VllmPrompt:
    """Token ids of one prompt. ``prompt_ids`` ends where the answer starts; ``answer_ids`` starts with
    the N ``<img_i>`` tokens (followed, in training, by the answer text and EOS)."""

    prompt_ids: list[int]
    answer_ids: list[int]
    images: list[np.ndarray]  # marked scene, then subject when given; RGB uint8
    loss_from: int = 0  # answer tokens before this index are not language-loss targets


def build_prompt(tokenizer, llava_config, num_image_tokens: int, scene: np.ndarray, mask: np.ndarray,
                 instruction: str, subject: np.ndarray | None, label: str | None) -> VllmPrompt:
    """Tokens for "USER: <image> [<image>] instruction ASSISTANT:", then ``<img_0> ... <img_{N-1}>``, then,
    if ``label`` is given (training), the target text "The mask means '<label>'" and EOS."""
    placeholder = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    per_image = patches_per_image(llava_config)

    def text(value: str) -> list[int]:
        return tokenizer(value, add_special_tokens=False).input_ids

    images = [mark_mask(scene, mask)] + ([subject] if subject is not None else [])
    ids = [tokenizer.bos_token_id] + text("USER: ")
    for _ in images:
        ids += [placeholder] * per_image + text("\n")
    ids += text(f"{instruction} ASSISTANT: ")
    answer = image_token_ids(tokenizer, num_image_tokens)
    if label is None:  # inference: nothing to learn
        return VllmPrompt(ids, answer, images, loss_from=len(answer))
    answer = answer + text(answer_text(label)) + [tokenizer.eos_token_id]
    # The N <img_i> tokens and the first word after them are predicted from the prompt's end and the
    # <img_i> positions: constants, left out of the loss (see the module docstring).
    return VllmPrompt(ids, answer, images, loss_from=num_image_tokens + 1)


def image_token_ids(tokenizer, num_image_tokens: int) -> list[int]:
    return tokenizer.convert_tokens_to_ids(image_token_names(num_image_tokens))


@dataclass(frozen=True)
class VllmBatch:
    """A right-padded batch. ``labels`` is -100 outside the answer (language loss on the answer only);
    at inference (answer = the ``<img_i>`` tokens only) nothing reads it."""

    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long, 1 = real token
    labels: torch.Tensor  # (B, L) long
    pixel_values: torch.Tensor  # (number of images in the batch, 3, S, S), CLIP-normalised

    def to(self, device) -> "VllmBatch":
        return VllmBatch(*(tensor.to(device) for tensor in
                           (self.input_ids, self.attention_mask, self.labels, self.pixel_values)))


def collate_prompts(prompts: list[VllmPrompt], pad_id: int, image_size: int) -> VllmBatch:
    """Pad a list of prompts (with their answers appended) into one batch."""
    length = max(len(prompt.prompt_ids) + len(prompt.answer_ids) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    labels = torch.full((len(prompts), length), -100, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = prompt.prompt_ids + prompt.answer_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        if len(prompt.answer_ids) > prompt.loss_from:
            start = len(prompt.prompt_ids) + prompt.loss_from
            labels[row, start: len(ids)] = torch.tensor(prompt.answer_ids[prompt.loss_from:])
    images = [image for prompt in prompts for image in prompt.images]
    return VllmBatch(input_ids, attention_mask, labels, clip_pixels(images, image_size))


def gather_image_token_states(hidden_states: torch.Tensor, input_ids: torch.Tensor,
                              token_ids: list[int]) -> torch.Tensor:
    """Hidden states (B, N, H) at the positions of ``<img_0> ... <img_{N-1}>`` (each exactly once per row).

    Vectorised: one comparison, one gather and a single device-to-host sync for the check (a loop over
    rows and tokens costs a sync per token per row: 1024 per training step of ``small`` at batch 128)."""
    wanted = torch.as_tensor(token_ids, device=input_ids.device)
    matches = input_ids.unsqueeze(-1) == wanted  # (B, L, N)
    counts = matches.sum(dim=1)  # (B, N)
    if not bool((counts == 1).all()):
        row, column = (counts != 1).nonzero()[0].tolist()
        raise ValueError(f"row {row}: expected exactly one token id {token_ids[column]}, "
                         f"found {int(counts[row, column])}")
    positions = matches.long().argmax(dim=1)  # (B, N): the one match
    return hidden_states.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1]))
