"""The training loop, under accelerate: one GPU to many (``accelerate launch``), mixed precision,
gradient checkpointing, seeded, resumable after a kill.

Output folder:
  loss.csv, loss.png       loss curves (total, diffusion, language, layout), learning rate and throughput
                           per logged step
  state-<step>/, latest.json   accelerate state (model, optimizer, step) of the last checkpoint
  pipeline/                the FlexEditPipeline (safetensors) to run with ``fsmi run --method flexedit``
  train.json               the config, data source and seed
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text

# data_wait_fraction: the share of the run's time spent waiting for batches (above ~0.1, the loader
# is what limits samples_per_second; add CPU cores or make examples cheaper).
CSV_FIELDS = ("step", "loss", "diffusion_loss", "language_loss", "layout_loss", "learning_rate",
              "samples_per_second", "elapsed_s", "data_wait_fraction")


@dataclass(frozen=True)
class TrainSummary:
    out: Path
    first_step: int  # 0, or the step a resumed run started from
    steps: int  # the step reached
    pipeline_dir: Path
    losses: tuple[float, ...]  # total loss of each step run in this call
    samples_per_second: float


def set_trainable(model, config) -> list[torch.nn.Parameter]:
    """Freeze what the config keeps fixed; return the parameters to train.

    VLLM: ``"train": "lora"`` trains the LoRA weights and the token embeddings / LM head (the new
    <img_i> tokens need embeddings); ``"full"`` trains it all (configs trained from scratch). The
    CLIP image encoder is trained only when it starts from random weights.
    """
    model.requires_grad_(True)
    if config.vllm["train"] == "lora":
        for name, parameter in model.vllm.named_parameters():
            parameter.requires_grad_("lora_" in name or "embed_tokens" in name or "lm_head" in name)
    if config.image_encoder["source"] != "scratch":
        model.image_encoder.requires_grad_(False)
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


class StepBatches(torch.utils.data.Dataset):
    """Item i: the CPU batch of step ``first_step + i`` for this rank. Example indices are a function of
    the step, so a resumed run sees what the killed one would have, with or without loader workers."""

    def __init__(self, examples, tokenizer, spec, batch_size: int, world: int, rank: int, first_step: int,
                 total_steps: int):
        self.examples, self.tokenizer, self.spec = examples, tokenizer, spec
        self.batch_size, self.world, self.rank = batch_size, world, rank
        self.first_step, self.total_steps = first_step, total_steps

    def __len__(self) -> int:
        return max(0, self.total_steps - self.first_step)

    def __getitem__(self, index: int):
        from flexedit_model.training.losses import collate_examples

        start = ((self.first_step + index) * self.world + self.rank) * self.batch_size
        return collate_examples([self.examples[start + offset] for offset in range(self.batch_size)],
                                self.tokenizer, self.spec)


def loader_workers(device) -> int:
    """Worker processes making batches: on GPU they keep it fed; on CPU they would only compete with
    the model for the same cores."""
    import os

    return 0 if torch.device(device).type == "cpu" else max(0, min(12, (os.cpu_count() or 1) - 2))


def _training_number(training: dict, key: str, default: float, valid, expected: str) -> float:
    """``training[key]`` as a float, or BadInputError naming the key and what it should be."""
    try:
        value = float(training.get(key, default))
    except (TypeError, ValueError):
        value = float("nan")
    if not valid(value):  # NaN fails every comparison
        raise BadInputError(f"training.{key} must be {expected}, got {training[key]!r}")
    return value


def cooldown_factor(progress: float, cooldown_fraction: float) -> float:
    """The learning rate's share of its base value at ``progress`` (0 to 1) through the run: 1 until the
    last ``cooldown_fraction`` of the run, then a linear fall to 0 at its end (0 = constant rate)."""
    if cooldown_fraction <= 0:
        return 1.0
    return min(1.0, max(0.0, (1.0 - progress) / cooldown_fraction))


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank) % (2**63)


def _latest_state(out: Path) -> tuple[Path, int] | None:
    pointer = out / "latest.json"
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text())
    return out / info["state"], int(info["step"])


def _read_log(out: Path, up_to_step: int) -> list[dict]:
    path = out / "loss.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


def _write_log(out: Path, rows: list[dict]) -> None:
    lines = [",".join(CSV_FIELDS)] + [",".join(str(row.get(key, "")) for key in CSV_FIELDS) for row in rows]
    atomic_write_text(out / "loss.csv", "\n".join(lines) + "\n")


def plot_losses(out: Path, rows: list[dict]) -> None:
    """loss.png: the losses against the step (log scale), and the learning rate (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = [int(row["step"]) for row in rows]
    for key in ("loss", "diffusion_loss", "language_loss", "layout_loss"):
        values = [float(row.get(key) or 0) for row in rows]
        if key != "layout_loss" or any(values):  # no layout curve for configs without the read-out
            axis.plot(steps, values, label=key)
    axis.set_xlabel("step")
    axis.set_yscale("log")
    handles, labels = axis.get_legend_handles_labels()
    rates = [float(row.get("learning_rate") or 0) for row in rows]
    if any(rates):  # the schedule on its own linear axis, so a cooldown shows where the loss drops
        rate_axis = axis.twinx()
        handles += rate_axis.plot(steps, rates, color="grey", linestyle="--", label="learning rate")
        labels.append("learning rate")
        rate_axis.set_ylabel("learning rate")
        rate_axis.set_ylim(bottom=0)
    axis.legend(handles, labels, fontsize="small")
    figure.tight_layout()
    temporary = out / ".loss.tmp.png"
    figure.savefig(temporary, metadata={"Software": None})
    plt.close(figure)
    temporary.replace(out / "loss.png")


def train_flexedit(config, data: str, out: str | Path, steps: int | None = None, resume: bool = False,
                   content=None, progress: bool = True, time_limit_s: float | None = None) -> TrainSummary:
    """Train FlexEdit with ``config`` on the training split of source ``data`` into ``out``.

    steps: the step to reach (default: the config's ``training.steps``, else 1000). ``resume``: go on
    from the last checkpoint in ``out``. ``content``: a SourceContent to use instead of loading ``data``
    (already split). ``time_limit_s``: stop (checkpoint and export) once this much time has passed
    (single-process runs: ranks could disagree on the clock). Raises BadInputError when ``out`` holds a run and ``resume`` is not set.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from flexedit_model.build import build_components, build_pipeline, build_scheduler
    from flexedit_model.training.data import TrainingExamples, load_training_content
    from flexedit_model.training.losses import CollateSpec, flexedit_loss

    out = Path(out)
    training = config.training
    total_steps = int(steps or training.get("steps", 1000))
    high_noise_bias = _training_number(training, "high_noise_bias", 1.0, lambda value: value > 0,
                                       "a number above 0 (1 = uniform timesteps)")
    layout_loss_weight = _training_number(training, "layout_loss_weight", 0.0, lambda value: value >= 0,
                                          "a number, 0 or more (0 = no layout read-out)")
    cooldown_fraction = _training_number(training, "lr_cooldown_fraction", 0.0, lambda value: 0 <= value <= 1,
                                         "a number from 0 to 1 (0 = constant learning rate)")
    latest = _latest_state(out)
    if latest is not None and not resume:
        raise BadInputError(f"{out} already holds a training run; pass --resume to go on, or use another --out")
    accelerator = Accelerator(mixed_precision=training["mixed_precision"], project_dir=str(out))
    seed = int(training["seed"])
    model, vae, tokenizer = build_components(config, seed)
    parameters = set_trainable(model, config)
    if training["gradient_checkpointing"]:
        model.use_gradient_checkpointing()
    model.train()
    base_learning_rate = float(training["learning_rate"])
    optimizer = torch.optim.AdamW(parameters, lr=base_learning_rate, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    vae.to(accelerator.device).requires_grad_(False)
    noise_scheduler = build_scheduler(config, "ddpm")
    if content is None:
        content = load_training_content(data, "train")
    examples = TrainingExamples(content, config.resolution, seed, training["mask_task_fraction"],
                                training["multi_fraction"], mask_task_mix=training.get("mask_task_mix"))
    first_step = 0
    if latest is not None:
        accelerator.load_state(str(latest[0]))
        first_step = latest[1]
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "train.json", json.dumps(
            {"config": config.to_dict(), "data": data, "seed": seed, "num_processes": accelerator.num_processes},
            indent=2, sort_keys=True))
    log_rows = _read_log(out, first_step)
    batch_size = int(training["batch_size"])
    world, rank = accelerator.num_processes, accelerator.process_index
    unwrapped = accelerator.unwrap_model(model)
    losses, started, samples = [], time.perf_counter(), 0
    workers = loader_workers(accelerator.device)
    batches = torch.utils.data.DataLoader(
        StepBatches(examples, tokenizer, CollateSpec.from_model(unwrapped), batch_size, world, rank, first_step,
                    total_steps),
        batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4 if workers else None)
    bar = tqdm(zip(range(first_step, total_steps), batches), disable=not (progress and accelerator.is_main_process),
               desc="train flexedit", initial=first_step, total=total_steps)
    waited, fetched = 0.0, time.perf_counter()
    for step, batch in bar:
        waited += time.perf_counter() - fetched
        batch = batch.to(accelerator.device)
        # How far through the run: by steps, or by the time limit when that ends it first. A time-limited
        # run ends where the clock says, so its rate schedule is as reproducible as its step count.
        progress = step / total_steps
        if time_limit_s is not None:
            progress = max(progress, (time.perf_counter() - started) / time_limit_s)
        learning_rate = base_learning_rate * cooldown_factor(progress, cooldown_fraction)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        generator = torch.Generator(device=accelerator.device).manual_seed(_step_seed(seed, step, rank))
        with accelerator.autocast():
            parts = flexedit_loss(unwrapped, vae, noise_scheduler, batch, generator, training["condition_dropout"],
                                  training["language_loss_weight"], config.inference["subject_scale"],
                                  high_noise_bias, layout_loss_weight)
        accelerator.backward(parts.total)
        accelerator.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(parts.total.detach()))
        samples += batch_size * world
        elapsed = time.perf_counter() - started
        out_of_time = time_limit_s is not None and elapsed >= time_limit_s
        if (step + 1) % int(training["log_every"]) == 0 or step + 1 == total_steps or out_of_time:
            log_rows.append({"step": step + 1, "loss": f"{losses[-1]:.6f}",
                             "diffusion_loss": f"{float(parts.diffusion):.6f}",
                             "language_loss": f"{float(parts.language):.6f}",
                             "layout_loss": f"{float(parts.layout):.6f}",
                             "learning_rate": f"{learning_rate:.3g}",
                             "samples_per_second": f"{samples / max(elapsed, 1e-9):.3f}",
                             "elapsed_s": f"{elapsed:.2f}",
                             "data_wait_fraction": f"{waited / max(elapsed, 1e-9):.3f}"})
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if (step + 1) % int(training["checkpoint_every"]) == 0 or step + 1 == total_steps or out_of_time:
            _checkpoint(accelerator, out, step + 1, log_rows)
        if out_of_time:
            total_steps = step + 1
            break
        fetched = time.perf_counter()  # after the loss's host sync: the step's GPU work is done
    pipeline_dir = out / "pipeline"
    if accelerator.is_main_process:
        _export_pipeline(config, (unwrapped, vae, tokenizer), pipeline_dir, build_pipeline)
        if log_rows:
            plot_losses(out, log_rows)
    accelerator.wait_for_everyone()
    elapsed = time.perf_counter() - started
    return TrainSummary(out, first_step, total_steps, pipeline_dir, tuple(losses),
                        samples / elapsed if samples else 0.0)


def _checkpoint(accelerator, out: Path, step: int, log_rows: list[dict]) -> None:
    """Save the state under a new name, then point latest.json at it: a kill never leaves a half state."""
    state = out / f"state-{step:08d}"
    accelerator.save_state(str(state))
    if accelerator.is_main_process:
        previous = _latest_state(out)
        _write_log(out, log_rows)
        atomic_write_text(out / "latest.json", json.dumps({"state": state.name, "step": step}))
        if previous is not None and previous[0] != state and previous[0].exists():
            shutil.rmtree(previous[0])
    accelerator.wait_for_everyone()


def _export_pipeline(config, components, pipeline_dir: Path, build_pipeline) -> None:
    model = components[0]
    pipeline = build_pipeline(config, components=components)
    temporary = pipeline_dir.with_name(pipeline_dir.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    pipeline.save_pretrained(temporary)
    shutil.rmtree(pipeline_dir, ignore_errors=True)
    temporary.rename(pipeline_dir)
    model.train()
