"""LAR-Gen / Largen (Pan et al., 2024) through scepter's ``LargenInference``, in the user's environment.

Config: python, checkout (modelscope/scepter), model_yaml (the LAR-Gen model yaml, PRETRAINED_MODEL
pointing at the local checkpoint), weights (that checkpoint file, hashed into run.json),
output_size (1024), sample_steps (50), guide_scale (7.5), image_scale (1.0), subject_task,
prompt_template ("{label}"), remove_prompt, case_timeout_s, startup_timeout_s.
Mask: the inpainting mask as is for text-guided (single-image) cases; its bounding box for
text-subject-guided (multi-image) cases, done by scepter's own preprocessing. See
baselines/drivers/largen_driver.py and baselines/README.md.
"""

from __future__ import annotations

from baselines.worker_protocol import WorkerMethod


class Largen(WorkerMethod):
    name = "largen"
    driver_file = "largen_driver.py"
    checkout_marker = "scepter/modules/inference/largen_inference.py"
    weight_keys = ("model_yaml", "weights")
    setup_hint = "see baselines/README.md, LAR-Gen"
