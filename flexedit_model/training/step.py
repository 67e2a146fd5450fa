"""One optimisation step: the loss of each of its micro-batches under autocast, their gradients summed with
accelerate's gradient accumulation (``training.gradient_accumulation_steps``), clipped, one update.

The loss is the forward of ``TrainingObjective``, the module accelerate prepares: on several processes it is
wrapped in DistributedDataParallel, whose forward readies the gradient all-reduce of the backward pass that
follows (torch/nn/parallel/distributed.py ``_post_forward``: ``reducer.prepare_for_backward``; the reducer's
autograd hooks do nothing until then). A loss computed by calling the model's methods around the wrapper
would leave each process with its own gradients and its replica drifting away from the others.

As in diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py``, a step is an optimisation step:
a run of S steps at batch B, accumulation A and P processes sees S x B x A x P examples. Noise, timesteps,
condition dropout and dropout layers draw from seeds made of the run's seed, the step, the rank and the
micro-batch, so a resumed run repeats the steps an uninterrupted one takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StepRecord:
    """The losses of one optimisation step (means over its micro-batches, host floats) and its learning rate."""

    loss: float
    diffusion_loss: float
    language_loss: float
    layout_loss: float
    learning_rate: float


class TrainingObjective(nn.Module):
    """FlexEdit's training loss (``flexedit_loss``) as a module's forward, the FlexEditModel its one submodule.

    The frozen VAE and the noise scheduler are held outside the registered modules: DDP neither broadcasts
    nor watches them, and the training state never saves them. The forward returns the loss parts as a
    tuple (total, diffusion, language, layout), the tensors DDP looks through for the parameters used."""

    def __init__(self, model: nn.Module, vae: nn.Module, noise_scheduler, settings, subject_scale: float):
        super().__init__()
        self.model = model
        self.frozen = (vae, noise_scheduler)  # a tuple: not registered
        self.settings, self.subject_scale = settings, subject_scale

    def forward(self, batch, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        from flexedit_model.training.losses import flexedit_loss

        settings = self.settings
        parts = flexedit_loss(self.model, *self.frozen, batch, generator, settings.condition_dropout,
                              settings.language_loss_weight, self.subject_scale, settings.high_noise_bias,
                              settings.layout_loss_weight)
        return parts.total, parts.diffusion, parts.language, parts.layout


def step_seed(seed: int, step: int, stream: int) -> int:
    """The seed of one micro-batch: ``stream`` = rank x accumulation + micro-batch (the rank, without
    accumulation, so runs without it draw what they drew before accumulation existed)."""
    return (seed * 1_000_003 + step * 7_919 + stream) % (2**63)


def optimisation_step(trainer, settings, micro_batches: Sequence, step: int, learning_rate: float) -> StepRecord:
    """Step ``step`` at ``learning_rate`` over ``micro_batches`` (``settings.gradient_accumulation_steps`` of
    them, on the trainer's device): forward and backward of each through the prepared ``trainer.objective``,
    then one clipped update.

    ``accelerator.accumulate`` skips the gradient all-reduce until the last micro-batch (DDP's ``no_sync``),
    ``backward`` divides each loss by the number of micro-batches (the update is that of their mean), and
    the prepared optimiser steps and zeroes only after the last one."""
    accelerator, optimizer = trainer.accelerator, trainer.optimizer
    count = accelerator.gradient_accumulation_steps
    if len(micro_batches) != count:
        raise ValueError(f"step {step}: {len(micro_batches)} micro-batches for an accumulation of {count}")
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    # accelerate counts micro-batches over the run to know when to update; a step here is exactly
    # ``count`` of them, so its count starts over (a restored or foreign count never shifts the update).
    accelerator.step = 0
    device = torch.device(accelerator.device)
    losses = []
    for micro, batch in enumerate(micro_batches):
        seed = step_seed(settings.seed, step, accelerator.process_index * count + micro)
        generator = torch.Generator(device=accelerator.device).manual_seed(seed)
        with accelerator.accumulate(trainer.objective):
            # Dropout layers draw from the global generator: seeded here too, on a fork (nothing else's
            # draws move).
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
                torch.manual_seed(seed)
                with accelerator.autocast():
                    total, diffusion, language, layout = trainer.objective(batch, generator)
                accelerator.backward(total)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainer.parameters, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(torch.stack([total.detach().float(), diffusion.float(), language.float(), layout.float()]))
    # One host sync for the four losses of the whole step.
    total, diffusion, language, layout = torch.stack(losses).mean(dim=0).tolist()
    return StepRecord(total, diffusion, language, layout, learning_rate)
