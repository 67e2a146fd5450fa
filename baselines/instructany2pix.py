"""InstructAny2Pix (Li et al., 2023) through its official pipeline, in the user's environment.

Config: python, checkout (jacklishufan/InstructAny2Pix with the checkpoints of
jacklishufan/instructany2pix_retrained in ckpts/), ckpt ("ckpts", relative to the checkout),
llm_folder ("llm-retrained"), alpha, h0, h1, h2, norm, refinement, num_inference_steps, subject_strength,
cfg, scale (the pipeline's own defaults: 0.7, 0.0, 0.4, 1.0, 20, 0.5, 25, 0, 10, 1.0),
instruction_templates ({"multi_add": "add [subject] to [scene]", ...}: the media inside the sentence, as
the official demos and training data have them; fields {instruction}, {label}), case_timeout_s,
startup_timeout_s.
Mask: ignored (the method has no mask input). The pipeline centre-crops the scene to a square; its output
is pasted back where that square was. See baselines/drivers/instructany2pix_driver.py.
"""

from __future__ import annotations

from baselines.worker_protocol import WorkerMethod


class InstructAny2Pix(WorkerMethod):
    name = "instructany2pix"
    driver_file = "instructany2pix_driver.py"
    checkout_marker = "instructany2pix/pipeline.py"
    setup_hint = "see baselines/README.md, InstructAny2Pix"
    option_kinds = {"ckpt": "str", "llm_folder": "str", "alpha": "number", "h0": "number", "h1": "number",
                    "h2": "number", "norm": "number", "refinement": "number", "num_inference_steps": "positive_int",
                    "subject_strength": "number", "cfg": "number", "scale": "number",
                    "instruction_templates": "str_mapping"}
