"""InstructAny2Pix (Li et al., 2023) through its official pipeline, in the user's environment.

Config: python, checkout (jacklishufan/InstructAny2Pix with the checkpoints of
jacklishufan/instructany2pix_retrained in ckpts/), ckpt ("ckpts", relative to the checkout),
llm_folder ("llm-retrained"), alpha, h0, h1, h2, norm, refinement, num_inference_steps,
subject_strength (serve.py's defaults; 0.65), instruction_template_single / _multi ([scene],
[subject], {instruction}, {label}), case_timeout_s, startup_timeout_s.
Mask: ignored (the method has no mask input). The scene is padded to a square so the pipeline's
1024 center crop keeps all of it; the output is cut back to the scene. See
baselines/drivers/instructany2pix_driver.py.
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
                    "subject_strength": "number", "instruction_template_single": "str",
                    "instruction_template_multi": "str"}
