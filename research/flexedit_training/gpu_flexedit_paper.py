"""FlexEdit's ``paper`` config at its real size on one GPU, with random weights in the real formats.

Writes random Stable Diffusion 1.5, LLaVA-1.5-7B (full depth, float16, llava-hf layout) and CLIP ViT-L/14
folders (``flexedit_model.checkpoint_formats``), then: builds the paper config around them, trains
``--steps`` optimisation steps at ``--resolution`` with ``--batch-size`` on the ``mini`` training split with
the paper config's own precision settings (bf16 autocast, frozen bases in bfloat16, gradient checkpointing,
gradient accumulation 4: the settings tests/flexedit/test_mixed_precision.py trains with on CPU), saves the
pipeline (compact), loads it back, and times one ``--edit-steps`` edit. Prints one JSON line: peak GPU
memory (GiB), samples/s, seconds per edit, checkpoint and state sizes (bytes), and the settings the run
recorded in its train.json. The weights are random: the figures are memory and speed, never quality.

    python research/flexedit_training/gpu_flexedit_paper.py --work /tmp/paper-check
    python research/flexedit_training/gpu_flexedit_paper.py --size tiny --device cpu --steps 1 \\
        --resolution 32 --batch-size 2 --edit-steps 2 --work /tmp/dry      # the CPU dry run of the tests
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def paper_config_on(folders: dict, size: str, resolution: int, batch_size: int, steps: int, edit_steps: int,
                    optimizer: str = "adamw"):
    """The paper config pointed at ``folders``; ``size="tiny"`` also shrinks the parts built here (Q-Former,
    token count) to match the tiny stand-ins. The training section's precision, checkpointing and
    accumulation are paper.json's at every size."""
    from flexedit_model.config import load_config

    paper = load_config("paper")
    changes = dict(
        resolution=resolution,
        vllm={**paper.vllm, "path": str(folders["llava"])},
        image_encoder={**paper.image_encoder, "path": str(folders["clip"])},
        unet={**paper.unet, "path": str(folders["sd"])}, vae={**paper.vae, "path": str(folders["sd"])},
        inference={**paper.inference, "num_inference_steps": edit_steps},
        training={**paper.training, "batch_size": batch_size, "steps": steps, "checkpoint_every": max(steps, 1),
                  "log_every": 1, "optimizer": optimizer},
    )
    if size == "tiny":
        changes.update(num_image_tokens=4, adapter={**paper.adapter, "num_heads": 4},
                       qformer={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                                "intermediate_size": 64, "num_query_tokens": 4})
    return dataclasses.replace(paper, **changes)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the weights, the run and the pipeline")
    parser.add_argument("--size", choices=("real", "tiny"), default="real")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10, help="optimisation steps (each of 4 accumulated batches)")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--edit-steps", type=int, default=50)
    parser.add_argument("--optimizer", choices=("adamw", "adamw8bit"), default="adamw",
                        help="adamw8bit: bitsandbytes' AdamW8bit (pip install -e '.[adamw8bit]')")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from flexedit_model.checkpoint_formats import write_clip_vision_folder, write_llava_folder, write_sd15_folder
    from flexedit_model.pipeline_flexedit import FlexEditPipeline
    from flexedit_model.training.loop import train_flexedit

    work = Path(args.work)
    started = time.perf_counter()
    folders = {"sd": work / "weights" / "stable-diffusion-v1-5", "llava": work / "weights" / "llava-1.5-7b-hf",
               "clip": work / "weights" / "clip-vit-large-patch14"}
    if not (folders["llava"] / "config.json").is_file():
        write_sd15_folder(folders["sd"], args.size)
        write_llava_folder(folders["llava"], args.size, shard_bytes=5 * 1024**3 if args.size == "real" else None)
        write_clip_vision_folder(folders["clip"], args.size)
    weights_s = time.perf_counter() - started
    config = paper_config_on(folders, args.size, args.resolution, args.batch_size, args.steps, args.edit_steps,
                             args.optimizer)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    summary = train_flexedit(config, "mini", work / "run", steps=args.steps, resume=True, progress=False)
    run = json.loads((work / "run" / "train.json").read_text())
    train_peak = torch.cuda.max_memory_allocated() / 1024**3 if cuda else None
    pipeline_dir = summary.pipeline_dir
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    loaded = FlexEditPipeline.from_pretrained(pipeline_dir).to(torch.device(args.device))
    loaded.set_progress_bar_config(disable=True)
    # A textured scene with a rectangular mask, and a subject: the cost of an edit, not its quality.
    generator = np.random.default_rng(0)
    side = args.resolution
    scene = generator.integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = np.zeros((side, side), dtype=bool)
    mask[side // 4: side // 2, side // 4: 3 * side // 4] = True
    subject = generator.integers(0, 256, (side // 2, side // 2, 3), dtype=np.uint8)
    loaded(scene, mask, "add the dog", subject=subject, seed=0, num_inference_steps=1)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    edit_started = time.perf_counter()
    result = loaded(scene, mask, "add the dog", subject=subject, seed=0)
    if cuda:
        torch.cuda.synchronize()
    edit_s = time.perf_counter() - edit_started
    figures = {
        "size": args.size, "device": torch.cuda.get_device_name() if cuda else args.device,
        "resolution": args.resolution, "batch_size": args.batch_size, "steps": summary.steps,
        "gradient_accumulation_steps": config.training["gradient_accumulation_steps"],
        "effective_batch_size": run["effective_batch_size"],
        "mixed_precision": run["config"]["training"]["mixed_precision"],
        "gradient_checkpointing": run["config"]["training"]["gradient_checkpointing"],
        "frozen_dtypes": run["frozen_dtypes"],
        "optimizer": args.optimizer, "state_bytes": folder_bytes(next((work / "run").glob("state-*"))),
        "train_peak_gpu_gib": round(train_peak, 2) if train_peak is not None else None,
        "edit_peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 2) if cuda else None,
        "samples_per_second": round(summary.samples_per_second, 3),
        "edit_steps": args.edit_steps, "seconds_per_edit": round(edit_s, 2),
        "checkpoint_bytes": folder_bytes(pipeline_dir), "model_bytes": folder_bytes(pipeline_dir / "model"),
        "finite_output": bool(np.isfinite(result.image).all()), "weights_written_s": round(weights_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    main()
