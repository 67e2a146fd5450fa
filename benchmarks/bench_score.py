"""Speed and memory of `fsmi score` against a per-image loop, at the real model sizes.

Both sides use the same models, built at their real sizes with random weights (a random
ViT-L/14 costs the same time as a trained one): open_clip ViT-L-14 without pretrained weights, a
DINOv2-S (ViT-S/14) from its config, and LPIPS-SqueezeNet with random layers. The numbers they
produce mean nothing as measurements of quality; only their agreement and their timing matter here.

1. A benchmark subset is built from the embedded `mini` source (`--single`, `--multi` cases at
   `--size` pixels, all 9 mask conditions) and two weightless methods (`copy-paste`, `inpaint`) are run.
2. The per-image loop, as the peers' evaluators do it: models loaded once, then output by output and
   metric by metric, every crop, reference and caption encoded afresh (batch of one).
3. `Scorer` (the code behind `fsmi score`), paper protocol, every metric, cold cache: method A.
4. `Scorer` on method B with the cache warm from method A (references and captions reused).
5. The bare forward time: the time spent inside the model calls that step 3 could not avoid.

Prints outputs per second, the ratios, the largest difference between the two sides' values, and
the peak resident memory. Exits non-zero if the two sides disagree by more than 1e-5. Examples
(the first is the CPU subset whose figures are reported; about 6 minutes on 2 cores):

    .venv/bin/python benchmarks/bench_score.py --single 1 --multi 1 --size 256
    .venv/bin/python benchmarks/bench_score.py --single 4 --multi 8 --size 512 --device cuda
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Timed:
    """Wraps an encoder; counts the seconds spent in its model calls."""

    def __init__(self, encoder, clock):
        self.encoder = encoder
        self.model = encoder.model
        self.clock = clock

    def __getattr__(self, name):
        attribute = getattr(self.encoder, name)
        if name not in ("encode_images", "encode_texts", "features"):
            return attribute

        def timed(*args, **kwargs):
            started = time.perf_counter()
            result = attribute(*args, **kwargs)
            if self.clock["sync"]:
                self.clock["sync"]()
            self.clock["seconds"] += time.perf_counter() - started
            return result

        return timed


def build_models(device: str):
    import open_clip
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from fsmi_bench.metrics.clip_metric import ClipEncoder
    from fsmi_bench.metrics.dino_metric import DinoEncoder, load_dinov2_processor
    from fsmi_bench.metrics.lpips_metric import LpipsDistance, build_lpips

    torch.manual_seed(0)
    clip_model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None)
    clip = ClipEncoder(clip_model, preprocess, open_clip.get_tokenizer("ViT-L-14"), device=device)
    dino_config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                               intermediate_size=1536, patch_size=14, image_size=518)
    dino = DinoEncoder(Dinov2Model(dino_config), load_dinov2_processor(), device=device)
    lpips = LpipsDistance(build_lpips("squeeze", None, None, random_backbone=True), device=device)
    return {"ViT-L-14": clip, "facebook/dinov2-small": dino, "lpips-squeeze-v0.1": lpips}


def per_image_loop(benchmark, run_root: Path, specs: dict, models: dict) -> dict:
    """The peers' way: for every output and every metric, load and encode everything it needs afresh."""
    from fsmi_bench.io import load_mask, load_rgb
    from fsmi_bench.metrics import pixel
    from fsmi_bench.metrics.clip_metric import clip_t, cosine
    from fsmi_bench.metrics.regions import metric_region, region_view, resize_image, resize_region
    from fsmi_bench.metrics.specs import metrics_for_kind

    values = {}
    for row in benchmark.rows:
        for metric in metrics_for_kind(row.kind):
            spec = specs[metric]
            output = resize_image(load_rgb(run_root / "outputs" / row.case_id / f"{row.mask_type}.png"), spec.size)
            reference = resize_image(load_rgb(benchmark.path(row.scene if spec.region == "bg" else row.gt)), spec.size)
            region = resize_region(load_mask(benchmark.path(row.region)), spec.size)
            keep = metric_region(region, spec.region)
            if spec.measure == "psnr":
                value = pixel.psnr(output, reference, keep, spec.region_mode)
            elif spec.measure == "ssim":
                value = pixel.ssim(output, reference, keep, spec.region_mode, spec.param("algorithm", "scikit-image"))
            else:
                output_view, reference_view, pixels = region_view(output, reference, keep, spec.region_mode)
                # The paper's CLIP is the Hugging Face folder; this script times the open_clip format, which
                # the scorer takes in its place (same architecture and cost).
                model = next(models[name] for name in spec.accepted_models if name in models)
                if spec.measure == "lpips":
                    out_features = model.features([output_view])[0]
                    ref_features = model.features([reference_view])[0]
                    value = model.distance(out_features, ref_features, pixels)
                elif spec.measure == "clip_t":
                    value = clip_t(model.encode_images([output_view])[0], model.encode_texts([row.clip_text])[0])
                else:
                    value = cosine(model.encode_images([output_view])[0], model.encode_images([reference_view])[0])
            values[(row.case_id, row.mask_type, metric)] = value
    return values


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=1, help="single-image cases (x9 mask conditions)")
    parser.add_argument("--multi", type=int, default=1, help="multi-image cases (x9 mask conditions)")
    parser.add_argument("--size", type=int, default=256, help="benchmark image size in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", default=None, help="folder for the benchmark, runs and cache (default: temp)")
    args = parser.parse_args(argv)

    import torch

    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    from fsmi_bench.benchmark.manifest import load_benchmark
    from fsmi_bench.metrics.models import ModelBank
    from fsmi_bench.metrics.specs import PROTOCOLS
    from fsmi_bench.run.engine import RunConfig, run_method
    from fsmi_bench.scoring.feature_cache import FeatureCache
    from fsmi_bench.scoring.scorer import OutputImage, Scorer

    work = Path(args.work or tempfile.mkdtemp(prefix="fsmi-bench-score-"))
    bench = work / "bench"
    if not (bench / "manifest.jsonl").is_file():
        build_benchmark(BuildConfig(out=bench, single=args.single, multi=args.multi, size=args.size,
                                    previews=False), progress=False)
    runs = {}
    for method in ("copy-paste", "inpaint"):
        runs[method] = work / "runs" / method
        run_method(RunConfig(method=method, bench=bench, out=runs[method], progress=False))
    benchmark = load_benchmark(bench)
    outputs_per_run = len(benchmark.rows)
    specs = PROTOCOLS["paper"]
    clock = {"seconds": 0.0, "sync": torch.cuda.synchronize if args.device.startswith("cuda") else None}
    models = {name: Timed(encoder, clock) for name, encoder in build_models(args.device).items()}
    # Warm-up (first calls allocate and pick kernels), outside every timing.
    warm = np.zeros((224, 224, 3), dtype=np.uint8)
    models["ViT-L-14"].encode_images([warm]); models["ViT-L-14"].encode_texts(["warm"])
    models["facebook/dinov2-small"].encode_images([warm]); models["lpips-squeeze-v0.1"].features([warm])
    print(f"device {args.device}; benchmark subset: {args.single} single + {args.multi} multi cases at "
          f"{args.size}px x 9 mask conditions = {outputs_per_run} outputs per method; paper protocol, all metrics; "
          f"torch threads {torch.get_num_threads()}")

    started = time.perf_counter()
    loop_values = per_image_loop(benchmark, runs["copy-paste"], specs, models)
    loop_seconds = time.perf_counter() - started
    print(f"per-image loop, method A:        {loop_seconds:8.1f} s  {outputs_per_run / loop_seconds:6.3f} outputs/s")

    def score(method, cache):
        outputs = {(row.case_id, row.mask_type): OutputImage(row.case_id, row.mask_type,
                                                             runs[method] / "outputs" / row.case_id
                                                             / f"{row.mask_type}.png") for row in benchmark.rows}
        scorer = Scorer(specs, ModelBank(preloaded=models), cache, batch_size=args.batch_size)
        clock["seconds"] = 0.0
        begun = time.perf_counter()
        values = scorer.score(benchmark, outputs)
        return values, time.perf_counter() - begun, clock["seconds"], scorer.model_calls

    cache = FeatureCache(work / "cache")
    values_a, seconds_a, forward_a, calls_a = score("copy-paste", cache)
    print(f"fsmi score, method A (cold):     {seconds_a:8.1f} s  {outputs_per_run / seconds_a:6.3f} outputs/s  "
          f"{calls_a} model inputs; bare forward {forward_a:.1f} s")
    values_b, seconds_b, forward_b, calls_b = score("inpaint", cache)
    print(f"fsmi score, method B (warm):     {seconds_b:8.1f} s  {outputs_per_run / seconds_b:6.3f} outputs/s  "
          f"{calls_b} model inputs; bare forward {forward_b:.1f} s")

    ours = {(v.case_id, v.mask_type, v.metric): v.value for v in values_a}
    differences = [abs(ours[key] - value) for key, value in loop_values.items()
                   if not (math.isinf(value) and ours[key] == value) and not math.isnan(value)]
    print(f"values compared: {len(differences)}; largest |difference| {max(differences):.2e}")
    print(f"speed-up vs per-image loop: method A {loop_seconds / seconds_a:.2f}x, "
          f"method B after A {loop_seconds / seconds_b:.2f}x")
    print(f"overhead over the unavoidable model calls: A {seconds_a / forward_a:.2f}x, B {seconds_b / forward_b:.2f}x")
    print(f"peak resident memory: {peak_rss_mib():.0f} MiB"
          + (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
             if args.device.startswith("cuda") else ""))
    return 0 if max(differences) <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
