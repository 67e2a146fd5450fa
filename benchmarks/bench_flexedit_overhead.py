"""Inference overhead of FlexEdit over the bare UNet denoising loop at the same size and steps.

FlexEdit runs the VLLM (answer + <img_i> states), Q-Former and MEA once per edit, then the same guided
UNet loop (3 UNet evaluations per step) a bare denoiser would run. Both sides use the same networks,
scheduler, latent size, guidance batch and steps; the ratio is FlexEdit time / bare loop time (target
<= 1.3). Random weights: this measures time only, never quality.

    .venv/bin/python benchmarks/bench_flexedit_overhead.py --config small --size 256 --steps 20
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
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from flexedit_model import latent_codec
    from flexedit_model.build import build_pipeline
    from flexedit_model.config import load_config

    pipeline = build_pipeline(load_config(args.config)).to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    mask = np.zeros((args.size, args.size), dtype=bool)
    mask[args.size // 4: args.size // 2, args.size // 3: 2 * args.size // 3] = True
    subject = rng.integers(0, 256, (args.size // 2, args.size // 2, 3), dtype=np.uint8)
    model, device = pipeline.model, torch.device(args.device)
    factor = latent_codec.spatial_factor(pipeline.vae)
    shape = (1, latent_codec.latent_channels(pipeline.vae), args.size // factor, args.size // factor)
    condition = model.null_edit_condition(1).detach()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    @torch.no_grad()
    def bare_loop():
        # The denoising loop alone: same guidance batch of 3, same scheduler and steps, no VLLM/Q-Former/MEA.
        pipeline.scheduler.set_timesteps(args.steps, device=device)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
        scenes = torch.randn((3, *shape[1:]), generator=torch.Generator().manual_seed(1)).to(device)
        conditions = torch.cat([condition] * 3)
        scales = torch.tensor([1.0, 0.0, 0.0], device=device)
        for timestep in pipeline.scheduler.timesteps:
            noise = model.predict_noise(torch.cat([latents] * 3), timestep, scenes, conditions, scales)
            with_text, with_scene, without = noise.chunk(3)
            noise = without + 1.5 * (with_scene - without) + 3.0 * (with_text - with_scene)
            latents = pipeline.scheduler.step(noise, timestep, latents).prev_sample
        return latents

    def flexedit():
        return pipeline(scene, mask, "add the dog from the second image in the marked area", subject=subject,
                        seed=0, num_inference_steps=args.steps, height=args.size, width=args.size)

    def timed(function):
        function()  # warm-up
        sync()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            sync()
            times.append(time.perf_counter() - start)
        return min(times)

    bare, full = timed(bare_loop), timed(flexedit)
    print(json.dumps({"config": args.config, "size": args.size, "steps": args.steps, "device": args.device,
                      "torch_threads": torch.get_num_threads(), "bare_unet_loop_s": round(bare, 3),
                      "flexedit_s": round(full, 3), "overhead_ratio": round(full / bare, 3)}))


if __name__ == "__main__":
    main()
