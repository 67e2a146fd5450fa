"""One process of a 2-process CPU training run (tests/flexedit/test_distributed.py starts two with torchrun, as
``accelerate launch`` starts one per GPU): it trains the ``tiny`` config on this rank's examples and writes the
trained parameters it ends with, so that the test can compare the ranks.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.support.ddp_rank OUT

Three runs, each with the GPU's training settings (bf16 autocast, gradient checkpointing, 2 micro-batches a step):
``whole`` (2 steps), ``parts`` (1 step) and ``parts`` resumed to step 2. Each writes OUT/<run>-rank<r>.safetensors
(the trained parameters) and OUT/<run>-rank<r>.json (the step losses and the kinds this rank trained on).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


def main(out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from flexedit_model import build
    from flexedit_model.config import load_config
    from flexedit_model.training import losses
    from flexedit_model.training.loop import train_flexedit

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    built, kinds = [], []
    original_build, original_collate = build.build_components, losses.collate_examples

    def keep_model(*args, **kwargs):
        parts = original_build(*args, **kwargs)
        built.append(parts[0])
        return parts

    def note_kinds(examples, tokenizer, spec):
        batch = original_collate(examples, tokenizer, spec)
        kinds.extend(batch.kinds)
        return batch

    build.build_components, losses.collate_examples = keep_model, note_kinds
    tiny = load_config("tiny")
    config = dataclasses.replace(tiny, training={
        **tiny.training, "batch_size": 2, "gradient_accumulation_steps": 2, "gradient_checkpointing": True,
        "mixed_precision": "bf16", "checkpoint_every": 1, "log_every": 1})
    for name, steps, resume in (("whole", 2, False), ("parts", 1, False), ("resumed", 2, True)):
        kinds.clear()
        summary = train_flexedit(config, "mini", out / ("whole" if name == "whole" else "parts"), steps=steps,
                                 resume=resume, progress=False)
        model = built[-1]
        save_file({key: parameter.detach().float().contiguous() for key, parameter in model.named_parameters()
                   if parameter.requires_grad}, str(out / f"{name}-rank{rank}.safetensors"))
        (out / f"{name}-rank{rank}.json").write_text(json.dumps({"losses": list(summary.losses), "kinds": kinds}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
