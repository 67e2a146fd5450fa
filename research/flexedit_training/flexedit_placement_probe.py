"""Can a config's UNet learn to put a drawing where its condition tokens say, on its own?

FlexEdit's mask reaches the UNet only as cross-attention tokens (VLLM -> Q-Former -> MEA). This probe
cuts that chain out: the UNet of ``--config`` is trained from scratch on the mask-understanding task
(held-out and training objects pasted on photos, and filled shapes) with tokens made straight from the
free-shape mask, so the only thing left to learn is to read a place from tokens and draw there:

- ``position``: the mask pooled to 8 x 8, through a fixed random projection per token, then a
  learned linear layer (the mask's place, handed over cleanly);
- ``appearance``: the mean of the scene latent under the mask (what the marked object looks like,
  as the MEA's cross-attention over scene features could give).

Every ``--eval-every`` steps it prints (and writes to ``--out``) the IoU of the drawn full mask against
the true one on held-out pasted objects and on training objects, read from the UNet's prediction of
the clean image at the noisiest timestep (the layout it commits to before any detail), beside the
IoU of the free-shape mask itself and of its bounding box (what ``copy-paste`` fills). If the UNet
does not get past those within the time FlexEdit trains for, no change before the UNet can make the
full model do so.

    .venv/bin/python research/flexedit_training/flexedit_placement_probe.py --config cpu-check --seconds 900
    # on a GPU machine where the repository is not installed (bf16, loader workers):
    PYTHONPATH=$PWD python3 research/flexedit_training/flexedit_placement_probe.py --config small --seconds 120 --out probe.jsonl
Compare ``--batch-size`` values over the same ``--seconds``: what counts is how soon IoU rises. With
``--config cpu-check`` on CPU it rose past 0.4 at step 400 with ``--high-noise-bias 4`` and only at
step 1,800 with ``--high-noise-bias 1`` (uniform timesteps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from flexedit_model.evaluation import box_of, mean_iou

GRID = 8  # the position encoding's pooling grid


class ProbeBatches(torch.utils.data.Dataset):
    """Item i: (scene pixels, target pixels, masks) of step i, as float tensors (CPU work for loader workers)."""

    def __init__(self, examples, batch_size: int):
        self.examples, self.batch_size = examples, batch_size

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, step: int):
        return stack([self.examples[step * self.batch_size + offset] for offset in range(self.batch_size)])


def stack(examples):
    from flexedit_model.training.losses import images_to_pixels

    masks = torch.from_numpy(np.stack([example.mask for example in examples]).astype(np.float32))
    return (images_to_pixels([example.scene for example in examples]),
            images_to_pixels([example.target for example in examples]), masks)


class MaskTokens(torch.nn.Module):
    """Condition tokens (B, N + subject slots, D) made straight from the free-shape mask."""

    def __init__(self, encoding: str, tokens: int, width: int, latent_channels: int, subject_slots: int):
        super().__init__()
        self.encoding, self.subject_slots = encoding, subject_slots
        features = GRID * GRID if encoding == "position" else latent_channels
        generator = torch.Generator().manual_seed(7)
        self.register_buffer("projection", torch.randn(tokens, features, width, generator=generator) / features**0.5)
        self.linear = torch.nn.Linear(width, width)

    def forward(self, masks: torch.Tensor, scene_latents: torch.Tensor) -> torch.Tensor:
        if self.encoding == "position":
            features = torch.nn.functional.adaptive_avg_pool2d(masks[:, None], GRID).flatten(1)
        else:
            weights = torch.nn.functional.adaptive_avg_pool2d(masks[:, None], scene_latents.shape[-1])
            features = (scene_latents * weights).sum((2, 3)) / weights.sum((2, 3)).clamp_min(1e-6)
        tokens = self.linear(torch.einsum("bf,nfd->bnd", features.to(self.projection.dtype), self.projection))
        return torch.cat([tokens, tokens.new_zeros(tokens.shape[0], self.subject_slots, tokens.shape[-1])], dim=1)


def main() -> None:
    from flexedit_model import latent_codec
    from flexedit_model.build import build_components, build_scheduler
    from flexedit_model.config import load_config
    from flexedit_model.training.data import TrainingExamples, load_training_content
    from flexedit_model.training.loop import loader_workers
    from flexedit_model.training.losses import diffusion_target, sample_timesteps
    from flexedit_model.training.settings import TrainingSettings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu-check")
    parser.add_argument("--data", default="mini")
    parser.add_argument("--seconds", type=float, default=300.0, help="training time")
    parser.add_argument("--encoding", choices=("position", "appearance"), default="position")
    parser.add_argument("--lr", type=float, default=None, help="default: the config's learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--high-noise-bias", type=float, default=None,
                        help="as training.high_noise_bias (default: the config's, else 1 = uniform)")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-examples", type=int, default=32)
    parser.add_argument("--out", default=None, help="also write the JSON lines here")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)

    config = load_config(args.config)
    training = config.training
    # --high-noise-bias overrides the config's; either is checked as training checks it (one line, exit 1).
    if args.high_noise_bias is not None:
        training = {**training, "high_noise_bias": args.high_noise_bias}
    settings = TrainingSettings.from_config(training)
    high_noise_bias = settings.high_noise_bias
    model, vae, _ = build_components(config, seed=settings.seed)
    unet = model.unet.to(device).train()
    vae.to(device)
    tokens = MaskTokens(args.encoding, config.qformer["num_query_tokens"], unet.config.cross_attention_dim,
                        latent_codec.latent_channels(vae), model.config.num_subject_tokens).to(device)
    parameters = list(unet.parameters()) + list(tokens.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr or settings.learning_rate, weight_decay=0.0)
    scheduler = build_scheduler(config, "ddpm")
    batch_size = args.batch_size or settings.batch_size
    mix = {"pasted": 0.5, "shape": 0.5}
    train = TrainingExamples(load_training_content(args.data, "train"), config.resolution, seed=0,
                             mask_task_fraction=1.0, mask_task_mix=mix)
    heldout = TrainingExamples(load_training_content(args.data, "heldout"), config.resolution, seed=12345,
                               mask_task_fraction=1.0, mask_task_mix={"pasted": 1.0})
    held_examples = [heldout[index] for index in range(args.eval_examples)]
    # Training objects with masks the training stream never draws (indices far past any run's reach).
    seen_examples = [train[10**8 + index] for index in range(args.eval_examples)]
    bf16 = device == "cuda"

    def prediction(scene_latents, masks, noisy, timesteps):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            return model.predict_noise(noisy, timesteps, scene_latents, tokens(masks, scene_latents), 0.0,
                                       subject_active=False).float()

    def clean_from(noisy, predicted, alpha):
        """The UNet's estimate of the clean latent, by the scheduler's prediction_type."""
        kind = scheduler.config.prediction_type
        if kind == "v_prediction":
            return alpha.sqrt() * noisy - (1 - alpha).sqrt() * predicted
        if kind == "epsilon":
            return (noisy - (1 - alpha).sqrt() * predicted) / alpha.sqrt().clamp_min(1e-4)
        return predicted  # "sample"

    def drawn_iou(examples) -> float:
        scene, _, masks = (tensor.to(device) for tensor in stack(examples))
        last = scheduler.config.num_train_timesteps - 1
        unet.eval()
        with torch.no_grad():
            scene_latents = latent_codec.encode(vae, scene)
            noise = torch.randn(scene_latents.shape, generator=torch.Generator().manual_seed(1)).to(device)
            timesteps = torch.full((len(examples),), last, device=device)
            predicted = prediction(scene_latents, masks, noise, timesteps)
            clean = clean_from(noise, predicted, scheduler.alphas_cumprod[last].to(device))
            drawn = latent_codec.decode(vae, clean).float().mean(dim=1).cpu().numpy() > 0
        unet.train()
        return mean_iou(zip(drawn, (example.region for example in examples)))

    out = Path(args.out) if args.out else None
    if out:
        out.write_text("")

    def emit(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            with open(out, "a") as handle:
                handle.write(line + "\n")

    emit({"config": args.config, "encoding": args.encoding, "device": device, "batch_size": batch_size,
          "high_noise_bias": high_noise_bias,
          "heldout_iou_free_shape_mask": mean_iou((e.mask, e.region) for e in held_examples),
          "heldout_iou_copy_paste_box": mean_iou((box_of(e.mask), e.region) for e in held_examples),
          "training_iou_free_shape_mask": mean_iou((e.mask, e.region) for e in seen_examples),
          "training_iou_copy_paste_box": mean_iou((box_of(e.mask), e.region) for e in seen_examples)})
    emit({"step": 0, "heldout_iou": drawn_iou(held_examples), "training_iou": drawn_iou(seen_examples)})
    workers = loader_workers(device)
    batches = torch.utils.data.DataLoader(ProbeBatches(train, batch_size), batch_size=None, num_workers=workers,
                                          prefetch_factor=4 if workers else None)
    started, step = time.perf_counter(), 0
    for scene, target, masks in batches:
        scene, target, masks = scene.to(device), target.to(device), masks.to(device)
        generator = torch.Generator(device=device).manual_seed(step)
        with torch.no_grad():
            target_latents = latent_codec.encode(vae, target)
            scene_latents = latent_codec.encode(vae, scene)
        noise = torch.randn(target_latents.shape, generator=generator, device=device)
        timesteps = sample_timesteps(scheduler.config.num_train_timesteps, batch_size, generator,
                                     high_noise_bias)
        noisy = scheduler.add_noise(target_latents, noise, timesteps)
        predicted = prediction(scene_latents, masks, noisy, timesteps)
        loss_tensor = torch.nn.functional.mse_loss(predicted, diffusion_target(scheduler, target_latents, noise,
                                                                               timesteps))
        optimizer.zero_grad(set_to_none=True)
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        elapsed = time.perf_counter() - started
        done = elapsed >= args.seconds
        if step % args.eval_every == 0 or done:
            emit({"step": step, "seconds": round(elapsed, 1), "samples_per_second": round(step * batch_size / elapsed, 1),
                  "loss": round(float(loss_tensor.detach()), 4), "heldout_iou": drawn_iou(held_examples),
                  "training_iou": drawn_iou(seen_examples)})
        if done:
            break


if __name__ == "__main__":
    from fsmi_bench.errors import BadInputError

    try:
        main()
    except BadInputError as error:  # an unknown config or a bad high_noise_bias, say: one line, exit 1
        raise SystemExit(f"error: {error}") from None
