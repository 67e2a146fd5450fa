"""Inference overhead of FlexEdit over the bare UNet denoising loop at the same size and steps.

FlexEdit runs the VLLM (one forward pass for the <img_i> states), Q-Former and MEA once per edit, then
the same guided UNet loop (3 UNet evaluations per step) a bare denoiser would run. Both sides use the
same networks, scheduler, latent size, guidance batch and steps; the ratio is FlexEdit time / bare loop
time (target <= 1.3). The two are timed alternately, ``--repeats`` times each, and the fastest of each
is kept, so that load from other processes on a shared machine hits both alike. Also reported: the
per-edit part alone (VLLM + Q-Former + MEA), and FlexEdit with the optional text answer generated.
Random weights: this measures time only, never quality.

    .venv/bin/python benchmarks/bench_flexedit_overhead.py --config small --size 256 --steps 10 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[20], help="one or more step counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-answer", action="store_true", help="skip timing the return_answer=True variant")
    args = parser.parse_args()

    from flexedit_model import latent_codec
    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config
    from flexedit_model.vllm import clip_pixels

    pipeline = build_pipeline(load_config(args.config)).to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    mask = np.zeros((args.size, args.size), dtype=bool)
    mask[args.size // 4: args.size // 2, args.size // 3: 2 * args.size // 3] = True
    subject = rng.integers(0, 256, (args.size // 2, args.size // 2, 3), dtype=np.uint8)
    instruction = "add the dog from the second image in the marked area"
    model, device = pipeline.model, torch.device(args.device)
    factor = latent_codec.spatial_factor(pipeline.vae)
    shape = (1, latent_codec.latent_channels(pipeline.vae), args.size // factor, args.size // factor)
    condition = model.null_edit_condition(1).detach()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def bare_loop(steps):
        # The denoising loop alone: same guidance batch of 3, same scheduler, steps and DCA branch as
        # FlexEdit with a subject; no VLLM/Q-Former/MEA.
        pipeline.scheduler.set_timesteps(steps, device=device)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
        scenes = torch.randn((3, *shape[1:]), generator=torch.Generator().manual_seed(1)).to(device)
        conditions = torch.cat([condition] * 3)
        scales = torch.tensor([1.0, 0.0, 0.0], device=device)
        for timestep in pipeline.scheduler.timesteps:
            model_input = pipeline.scheduler.scale_model_input(torch.cat([latents] * 3), timestep)
            noise = model.predict_noise(model_input, timestep, scenes, conditions, scales, True)
            with_text, with_scene, without = noise.chunk(3)
            noise = without + 1.5 * (with_scene - without) + 3.0 * (with_text - with_scene)
            latents = pipeline.scheduler.step(noise, timestep, latents).prev_sample
        return latents

    def flexedit(steps, return_answer=False):
        return pipeline(scene, mask, instruction, subject=subject, seed=0, num_inference_steps=steps,
                        height=args.size, width=args.size, return_answer=return_answer)

    @torch.no_grad()
    def per_edit_part():
        # What FlexEdit adds once per edit: VLLM states, CLIP encodes, Q-Former and MEA.
        states, _ = pipeline.vllm_states(scene, mask, instruction, subject)
        size = model.image_encoder.config.image_size
        return model.edit_condition(states, clip_pixels([scene], size).to(device),
                                    clip_pixels([subject], size).to(device))

    def once(function, *arguments):
        sync()
        start = time.perf_counter()
        function(*arguments)
        sync()
        return time.perf_counter() - start

    bare_loop(2), flexedit(2), flexedit(2, True), per_edit_part()  # warm-up
    rows = []
    for steps in args.steps:
        timings = {"bare": [], "flexedit": [], "flexedit_answer": []}
        for _ in range(args.repeats):  # alternate, so that machine load falls on both sides alike
            timings["bare"].append(once(bare_loop, steps))
            timings["flexedit"].append(once(flexedit, steps))
            if not args.no_answer:
                timings["flexedit_answer"].append(once(flexedit, steps, True))
        bare, full = min(timings["bare"]), min(timings["flexedit"])
        row = {"config": args.config, "size": args.size, "steps": steps, "device": args.device,
               "torch_threads": torch.get_num_threads(), "bare_unet_loop_s": round(bare, 3),
               "flexedit_s": round(full, 3), "overhead_ratio": round(full / bare, 3)}
        if timings["flexedit_answer"]:
            answered = min(timings["flexedit_answer"])
            row.update(flexedit_with_answer_s=round(answered, 3), overhead_ratio_with_answer=round(answered / bare, 3))
        rows.append(row)
    per_edit = min(once(per_edit_part) for _ in range(args.repeats))
    for row in rows:
        row["per_edit_vllm_qformer_mea_s"] = round(per_edit, 3)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
