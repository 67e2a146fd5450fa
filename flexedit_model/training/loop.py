"""The training loop, under accelerate: one GPU to many (``accelerate launch``), mixed precision (frozen
bases kept in the dtype it computes in: flexedit_model/precision.py), gradient checkpointing and
accumulation (training/step.py), seeded, resumable after a kill.

Output folder:
  loss.csv, loss.png       loss curves (total, diffusion, language, layout), learning rate, throughput and
                           the kinds of the step's examples (source/task), per logged step
  state-<step>/, latest.json   accelerate state of the last checkpoint: trained parameters, optimizer, RNG
                           (frozen weights are rebuilt on resume: training/resume_state.py)
  pipeline/                the FlexEditPipeline (safetensors) to run with ``fsmi run --method flexedit``
  train.json               the config, data sources, seed, processes, effective batch and frozen dtypes
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from flexedit_model.training import resume_state
from flexedit_model.training.optimizers import check_available, make_optimizer
from flexedit_model.training.settings import TrainingSettings
from flexedit_model.training.step import StepRecord, TrainingObjective, optimisation_step
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text

# data_wait_fraction: the share of the run's time spent waiting for batches (above ~0.1, the loader
# is what limits samples_per_second; add CPU cores or make examples cheaper).
# loss.csv is written by the main process: on several processes, its losses and kinds are those of its own examples.
# kinds: the step's examples (all its micro-batches), "<source kind>/<task>" each, space-separated: coco/mask llava/vqa
CSV_FIELDS = ("step", "loss", "diffusion_loss", "language_loss", "layout_loss", "learning_rate",
              "samples_per_second", "elapsed_s", "data_wait_fraction", "kinds")


@dataclass(frozen=True)
class TrainSummary:
    out: Path
    first_step: int  # 0, or the step a resumed run started from
    steps: int  # the step reached
    pipeline_dir: Path
    losses: tuple[float, ...]  # total loss of each step run in this call
    samples_per_second: float


def set_trainable(model, config) -> list[torch.nn.Parameter]:
    """Freeze what the config keeps fixed; return the parameters to train, in float32.

    VLLM: ``"train": "lora"`` trains the LoRA weights and, for a pretrained LLaVA, the rows of the new
    ``<img_i>`` tokens only (``new_rows``; ``"train_token_rows": "all"`` trains the whole embedding and
    LM head, as configs trained from scratch do); ``"full"`` trains it all. The CLIP image encoder is
    trained only when it starts from random weights. Trained parameters are kept in float32 whatever the
    dtype of the frozen ones (AdamW's updates are lost in 16 bits); accelerate's mixed precision
    computes in 16 bits.
    """
    model.requires_grad_(True)
    if config.vllm["train"] == "lora":
        whole_rows = not model.config.new_token_rows_only
        for name, parameter in model.vllm.named_parameters():
            parameter.requires_grad_("lora_" in name or ".new_rows" in name or (
                whole_rows and ("embed_tokens" in name or "lm_head" in name)))
    if config.image_encoder["source"] != "scratch":
        model.image_encoder.requires_grad_(False)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    for parameter in parameters:
        if parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return parameters


class StepBatches(torch.utils.data.Dataset):
    """Item i: the CPU micro-batches (``accumulation`` of them) of step ``first_step + i`` for this rank.
    Example indices are a function of the step, so a resumed run sees what the killed one would have,
    with or without loader workers."""

    def __init__(self, examples, tokenizer, spec, batch_size: int, world: int, rank: int, first_step: int,
                 total_steps: int, accumulation: int = 1):
        self.examples, self.tokenizer, self.spec = examples, tokenizer, spec
        self.batch_size, self.world, self.rank = batch_size, world, rank
        self.first_step, self.total_steps, self.accumulation = first_step, total_steps, accumulation

    def __len__(self) -> int:
        return max(0, self.total_steps - self.first_step)

    def __getitem__(self, index: int):
        from flexedit_model.training.losses import collate_examples

        first = ((self.first_step + index) * self.world + self.rank) * self.accumulation
        return tuple(collate_examples([self.examples[(first + micro) * self.batch_size + offset]
                                       for offset in range(self.batch_size)], self.tokenizer, self.spec)
                     for micro in range(self.accumulation))


def loader_workers(device) -> int:
    """Worker processes making batches: on GPU they keep it fed; on CPU they would only compete with
    the model for the same cores."""
    import os

    return 0 if torch.device(device).type == "cpu" else max(0, min(12, (os.cpu_count() or 1) - 2))


def cooldown_factor(progress: float, cooldown_fraction: float) -> float:
    """The learning rate's share of its base value at ``progress`` (0 to 1) through the run: 1 until the
    last ``cooldown_fraction`` of the run, then a linear fall to 0 at its end (0 = constant rate)."""
    if cooldown_fraction <= 0:
        return 1.0
    return min(1.0, max(0.0, (1.0 - progress) / cooldown_fraction))


def _latest_state(out: Path) -> _SavedState | None:
    pointer = out / "latest.json"
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text())
    return _SavedState(out / info["state"], int(info["step"]))


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


def train_flexedit(config, data: str | Sequence[str], out: str | Path, steps: int | None = None,
                   resume: bool = False, content=None, progress: bool = True,
                   time_limit_s: float | None = None) -> TrainSummary:
    """Train FlexEdit with ``config`` on the training split of source ``data`` into ``out``.

    ``data``: a source spec (``mini``, ``coco:PATH``, ...), or several ``SPEC=WEIGHT`` to mix
    (training/data_mix.py). steps: the step to reach (default: the config's ``training.steps``).
    ``resume``: go on from the last checkpoint in ``out``. ``content``: a SourceContent (or a list, one
    per source) to use instead of loading ``data`` (already split). ``time_limit_s``: stop (checkpoint and
    export) once this much time has passed (single-process runs: ranks could disagree on the clock).
    Raises BadInputError, before anything is written, when ``out`` holds a run and ``resume`` is not set,
    when ``data`` does not parse, or when ``config.training`` does not pass ``TrainingSettings.from_config``.
    """
    from flexedit_model.training.data_mix import describe, parse_data

    sources = parse_data(data)
    run = _plan_run(config, Path(out), steps, resume, time_limit_s)
    # The sources first: a bad path answers before a model of many GB is loaded.
    examples = _training_examples(config, run.settings, sources, content)
    trainer = _build_trainer(config, run)
    first_step = _restore(trainer, run)
    _write_run_info(run, config, describe(sources), trainer.accelerator)
    if progress:
        _print_budget(run, trainer.accelerator, first_step)
    log_rows = _read_log(run.out, first_step)
    started = time.perf_counter()
    batches = _step_loader(examples, trainer, run.settings, first_step, run.total_steps)
    outcome = _run_steps(run, trainer, batches, first_step, log_rows, started, progress)
    pipeline_dir = _finish(config, trainer, run.out, log_rows)
    elapsed = time.perf_counter() - started
    return TrainSummary(run.out, first_step, outcome.steps, pipeline_dir, outcome.losses,
                        outcome.samples / elapsed if outcome.samples else 0.0)


@dataclass(frozen=True)
class _SavedState:
    """A checkpoint in the output folder: its accelerate state folder and the step it holds."""

    path: Path
    step: int


@dataclass(frozen=True)
class _RunPlan:
    """What a call of ``train_flexedit`` is to do, settled before anything is built or written."""

    out: Path
    settings: TrainingSettings
    total_steps: int  # the step to reach
    latest: _SavedState | None  # the checkpoint to resume from
    time_limit_s: float | None


@dataclass(frozen=True, eq=False)
class _Trainer:
    """The model and what trains it, prepared by accelerate."""

    accelerator: object  # accelerate.Accelerator
    objective: torch.nn.Module  # the TrainingObjective (its forward is the loss), prepared: in DDP on several processes
    unwrapped: torch.nn.Module  # the FlexEditModel itself (what is saved and exported)
    vae: torch.nn.Module
    tokenizer: object
    parameters: list  # the trained parameters
    optimizer: torch.optim.Optimizer


@dataclass(frozen=True)
class _LoopOutcome:
    steps: int  # the step reached
    losses: tuple[float, ...]  # total loss of each step run
    samples: int  # examples trained on, over all processes


def _plan_run(config, out: Path, steps: int | None, resume: bool, time_limit_s: float | None) -> _RunPlan:
    """The checked settings and the resume point; BadInputError before anything is written."""
    from flexedit_model.precision import frozen_dtypes

    settings = TrainingSettings.from_config(config.training)
    check_available(settings.optimizer)
    # A frozen dtype the run cannot compute with answers now, before the data or any model loads.
    frozen_dtypes(config, "cuda" if torch.cuda.is_available() else "cpu", settings.mixed_precision)
    latest = _latest_state(out)
    if latest is not None and not resume:
        raise BadInputError(f"{out} already holds a training run; pass --resume to go on, or use another --out")
    return _RunPlan(out, settings, int(steps or settings.steps), latest, time_limit_s)


def _build_trainer(config, run: _RunPlan) -> _Trainer:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    from flexedit_model.build import build_components, build_scheduler

    settings = run.settings
    # Some trained parameters get no gradient in some steps (the LM head's new rows without an answer to
    # learn, DCA's subject projections without a subject): DDP must look for them at each step.
    accelerator = Accelerator(mixed_precision=settings.mixed_precision, project_dir=str(run.out),
                              gradient_accumulation_steps=settings.gradient_accumulation_steps,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    model, vae, tokenizer = build_components(config, settings.seed, accelerator.device, settings.mixed_precision)
    parameters = set_trainable(model, config)
    if settings.gradient_checkpointing:
        model.use_gradient_checkpointing()
    model.train()
    vae.to(accelerator.device).requires_grad_(False)
    optimizer = make_optimizer(settings.optimizer, parameters, settings.learning_rate)
    objective = TrainingObjective(model, vae, build_scheduler(config, "ddpm"), settings,
                                  config.inference["subject_scale"])
    objective, optimizer = accelerator.prepare(objective, optimizer)
    resume_state.install(accelerator, model)
    return _Trainer(accelerator, objective, model, vae, tokenizer, parameters, optimizer)


def _training_examples(config, settings: TrainingSettings, sources, content=None):
    """The examples of each source (its training split), mixed by weight when there are several."""
    from flexedit_model.training.data_mix import build_examples

    return build_examples(config, settings, sources, content)


def _restore(trainer: _Trainer, run: _RunPlan) -> int:
    """Load the checkpoint to resume from, if any; the step to start at."""
    if run.latest is None:
        return 0
    resume_state.restore_state(trainer.accelerator, trainer.unwrapped, run.latest.path)
    return run.latest.step


def _write_run_info(run: _RunPlan, config, data: str | list[dict], accelerator) -> None:
    """train.json: the config, sources and seed, and what the run computes with: processes, effective
    batch, examples seen at its last step, the dtype each frozen base is kept in."""
    from flexedit_model.precision import frozen_dtypes

    if accelerator.is_main_process:
        run.out.mkdir(parents=True, exist_ok=True)
        settings, processes = run.settings, accelerator.num_processes
        dtypes = frozen_dtypes(config, accelerator.device, settings.mixed_precision)
        atomic_write_text(run.out / "train.json", json.dumps(
            {"config": config.to_dict(), "data": data, "seed": settings.seed, "num_processes": processes,
             "effective_batch_size": settings.effective_batch(processes),
             "samples_at_last_step": run.total_steps * settings.effective_batch(processes),
             "frozen_dtypes": {part: str(dtype).removeprefix("torch.") for part, dtype in dtypes.items()}},
            indent=2, sort_keys=True))


def _print_budget(run: _RunPlan, accelerator, first_step: int) -> None:
    """One line at the start: the effective batch and the examples the run will have seen at its end."""
    import sys

    settings, processes = run.settings, accelerator.num_processes
    batch = settings.effective_batch(processes)
    accelerator.print(
        f"effective batch {batch} = {settings.batch_size} per micro-batch x {settings.gradient_accumulation_steps} "
        f"accumulated x {processes} process{'es' if processes > 1 else ''}; steps {first_step} to {run.total_steps}: "
        f"{run.total_steps * batch} examples seen at the end", file=sys.stderr)


def _step_loader(examples, trainer: _Trainer, settings: TrainingSettings, first_step: int,
                 total_steps: int) -> torch.utils.data.DataLoader:
    """This rank's batches of steps ``first_step`` to ``total_steps`` (made by loader workers on a GPU)."""
    from flexedit_model.training.losses import CollateSpec

    accelerator = trainer.accelerator
    workers = loader_workers(accelerator.device)
    return torch.utils.data.DataLoader(
        StepBatches(examples, trainer.tokenizer, CollateSpec.from_model(trainer.unwrapped), settings.batch_size,
                    accelerator.num_processes, accelerator.process_index, first_step, total_steps,
                    settings.gradient_accumulation_steps),
        batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4 if workers else None)


def _run_steps(run: _RunPlan, trainer: _Trainer, batches, first_step: int, log_rows: list[dict], started: float,
               show_progress: bool) -> _LoopOutcome:
    """Steps ``first_step`` to the run's end (or its time limit), logging into ``log_rows`` and
    checkpointing as the settings say."""
    from tqdm.auto import tqdm

    settings, accelerator, time_limit_s = run.settings, trainer.accelerator, run.time_limit_s
    bar = tqdm(zip(range(first_step, run.total_steps), batches),
               disable=not (show_progress and accelerator.is_main_process),
               desc="train flexedit", initial=first_step, total=run.total_steps)
    losses, samples, reached = [], 0, run.total_steps
    waited, fetched = 0.0, time.perf_counter()
    for step, batch in bar:
        waited += time.perf_counter() - fetched
        micro_batches = [micro.to(accelerator.device) for micro in batch]
        learning_rate = settings.learning_rate * cooldown_factor(
            _run_progress(step, run.total_steps, started, time_limit_s), settings.lr_cooldown_fraction)
        record = optimisation_step(trainer, settings, micro_batches, step, learning_rate)
        losses.append(record.loss)
        samples += settings.effective_batch(accelerator.num_processes)
        elapsed = time.perf_counter() - started
        out_of_time = time_limit_s is not None and elapsed >= time_limit_s
        last = step + 1 == run.total_steps or out_of_time
        if (step + 1) % settings.log_every == 0 or last:
            kinds = " ".join(kind for micro in batch for kind in micro.kinds)  # all the step's micro-batches
            log_rows.append(_log_row(step + 1, record, samples, elapsed, waited) | {"kinds": kinds})
            bar.set_postfix(loss=f"{record.loss:.4f}")
        if (step + 1) % settings.checkpoint_every == 0 or last:
            _checkpoint(accelerator, run.out, step + 1, log_rows)
        if out_of_time:
            reached = step + 1
            break
        fetched = time.perf_counter()  # after the loss's host sync: the step's GPU work is done
    return _LoopOutcome(reached, tuple(losses), samples)


def _run_progress(step: int, total_steps: int, started: float, time_limit_s: float | None) -> float:
    """How far through the run: by steps, or by the time limit when that ends it first. A time-limited
    run ends where the clock says, so its rate schedule is as reproducible as its step count."""
    progress = step / total_steps
    if time_limit_s is not None:
        progress = max(progress, (time.perf_counter() - started) / time_limit_s)
    return progress


def _log_row(step: int, record: StepRecord, samples: int, elapsed: float, waited: float) -> dict:
    """The loss.csv row of ``step`` (the step count reached), as text."""
    return {"step": step, "loss": f"{record.loss:.6f}",
            "diffusion_loss": f"{record.diffusion_loss:.6f}",
            "language_loss": f"{record.language_loss:.6f}",
            "layout_loss": f"{record.layout_loss:.6f}",
            "learning_rate": f"{record.learning_rate:.3g}",
            "samples_per_second": f"{samples / max(elapsed, 1e-9):.3f}",
            "elapsed_s": f"{elapsed:.2f}",
            "data_wait_fraction": f"{waited / max(elapsed, 1e-9):.3f}"}


def _finish(config, trainer: _Trainer, out: Path, log_rows: list[dict]) -> Path:
    """Export the pipeline and plot the losses (main process); the pipeline folder."""
    from flexedit_model.build import build_pipeline

    pipeline_dir = out / "pipeline"
    if trainer.accelerator.is_main_process:
        _export_pipeline(config, (trainer.unwrapped, trainer.vae, trainer.tokenizer), pipeline_dir, build_pipeline)
        if log_rows:
            plot_losses(out, log_rows)
    trainer.accelerator.wait_for_everyone()
    return pipeline_dir


def _checkpoint(accelerator, out: Path, step: int, log_rows: list[dict]) -> None:
    """Save the state under a new name, then point latest.json at it: a kill never leaves a half state."""
    state = out / f"state-{step:08d}"
    accelerator.save_state(str(state))
    if accelerator.is_main_process:
        previous = _latest_state(out)
        _write_log(out, log_rows)
        atomic_write_text(out / "latest.json", json.dumps({"state": state.name, "step": step}))
        if previous is not None and previous.path != state and previous.path.exists():
            shutil.rmtree(previous.path)
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
