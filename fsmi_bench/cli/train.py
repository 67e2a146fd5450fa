"""``fsmi train``: train models in the repository (FlexEdit). Imports only click at module level; the
trainers are found through a registry, as methods are, so fsmi_bench never imports the model's package."""

from __future__ import annotations

import click

from fsmi_bench.errors import BadInputError
from fsmi_bench.registry import Registry

TRAINERS = Registry("trainer")
TRAINERS.register("flexedit", "flexedit_model.training.command:train", "FlexEdit (flexedit_model/)")


@click.group("train")
def train_group():
    """Train a model in the repository."""


@train_group.command("flexedit")
@click.option("--config", "config_name", default="small", show_default=True,
              help="tiny, small, paper, or the path of a JSON config shaped like flexedit_model/configs/tiny.json.")
@click.option("--data", multiple=True, default=("mini",), show_default=True, metavar="SPEC[=WEIGHT]",
              help="Data to train on (its training split): mini, coco:PATH, refcoco:PATH (RefCOCO / gRefCOCO "
                   "refs + instances.json), magicbrush:PATH and ip2p:PATH (save_to_disk folders), fsmi:PATH (edit "
                   "cases), hf:PATH, llava:PATH (LLaVA VQA JSON). Repeat to mix sources: each example comes from "
                   "one, drawn with probability WEIGHT / sum of weights (default weight 1; deterministic given "
                   "the config's seed). Formats: flexedit_model/README.md.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--steps", type=int, default=None,
              help="Train until this step (default: the config's training.steps). A config's learning-rate "
                   "cooldown is placed by it, so a finished run resumed with a larger --steps goes back to the "
                   "full rate first.")
@click.option("--resume", is_flag=True, help="Go on from the last checkpoint in --out (after a kill, or to more steps).")
def train_flexedit_command(config_name, data, out, steps, resume):
    """Train FlexEdit; writes loss curves, checkpoints and a pipeline to run with `fsmi run`.

    \b
    Example:
      fsmi train flexedit --config small --data mini --out runs/flexedit-small --steps 2000
      fsmi train flexedit --config small --data mini --out runs/flexedit-small --steps 4000 --resume
      fsmi train flexedit --config paper --data coco:/data/coco=0.3 --data fsmi:/data/edits=0.7 --out runs/mix
      accelerate launch $(which fsmi) train flexedit --config paper --out runs/paper   # many GPUs
      fsmi run --method flexedit --weights runs/flexedit-small/pipeline --bench bench --out runs/fx
    """
    if steps is not None and steps < 1:
        raise BadInputError("--steps must be at least 1")
    summary = TRAINERS.get("flexedit")(config_name, list(data), out, steps=steps, resume=resume)
    click.echo(f"trained to step {summary.steps} ({summary.samples_per_second:.1f} samples/s); "
               f"pipeline: {summary.pipeline_dir}")


command = train_group
