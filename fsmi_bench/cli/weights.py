"""``fsmi weights fetch``: download the metric weights, only when asked. The work is in
``fsmi_bench.metrics.download`` (imported when the command runs)."""

from __future__ import annotations

import click


@click.group("weights")
def command():
    """The metric models' weights: `fsmi weights fetch` downloads them (nothing else ever does)."""


@command.command("fetch")
@click.argument("names", nargs=-1, metavar="[NAME ...]")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
def fetch(names, progress):
    """Download metric weights into the caches `fsmi score` and `fsmi doctor` read.

    NAME: clip-vit-l-14-hf (the Hugging Face folder of openai/clip-vit-large-patch14, 1.7 GB, the paper
    protocol's CLIP), clip-vit-l-14 (open_clip ViT-L/14 OpenAI, 1.7 GB, strict's), dinov2-small
    (facebook/dinov2-small, 88 MB), alexnet-imagenet, squeezenet-imagenet (the LPIPS backbones,
    torchvision); none = all of them.
    From the Hugging Face hub ($HF_ENDPOINT) and torchvision's URLs ($FSMI_TORCHVISION_URL for a mirror).
    CLIP and DINOv2 come from a commit pinned in fsmi, each file checked against its sha256 pinned beside
    it; torchvision files against the start of the sha256 their names carry (the whole digest is recorded
    at the first download). Each file's size is pinned or capped, and a server that stalls (less than 64 KiB
    in 30 s) is stopped. Nothing takes its final name unchecked; an interrupted download resumes when the
    command is run again. `fsmi doctor` shows each digest and what it was checked against.

    \b
    Examples:
      fsmi weights fetch
      fsmi weights fetch clip-vit-l-14-hf dinov2-small squeezenet-imagenet
    """
    from fsmi_bench.metrics.download import fetch_weights

    for item in fetch_weights(names, progress=progress):
        state = "downloaded" if item.downloaded else "already here"
        click.echo(f"{item.name}: {state} {item.path} sha256 {item.sha256}")
