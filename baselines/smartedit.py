"""SmartEdit (Huang et al., 2024) through its official test script's model, in the user's environment.

Config: python, checkout (TencentARC/SmartEdit), total_dir (the SmartEdit-7B/13B checkpoint folder as on
the hub, adapter_config.json inside LLM-<steps>/),
steps (15000), model_name_or_path (Vicuna), llava_model_path (LLaVA), sd_ip2p_path (local
timbrooks/instruct-pix2pix folder), sd_model_path (local stable-diffusion-v1-5 folder),
sd_qformer_version ("v1.1-7b"), resize_resolution (256), num_inference_steps (100), guidance_scale
(7.5), image_guidance_scale (1.5), temperature (0.7), case_timeout_s, startup_timeout_s.
bert-base-uncased and the LLaVA vision tower must be in the local Hugging Face cache.
Mask: ignored (instruction only). Runs on CUDA only, as the official script (run with --device cuda, or
cuda:N for another GPU); any other device is refused before a worker starts. See
baselines/drivers/smartedit_driver.py.
"""

from __future__ import annotations

from baselines.worker_protocol import WorkerMethod


class SmartEdit(WorkerMethod):
    name = "smartedit"
    driver_file = "smartedit_driver.py"
    checkout_marker = "test/DS_SmartEdit_test.py"
    weight_keys = ("total_dir", "model_name_or_path", "llava_model_path", "sd_ip2p_path", "sd_model_path")
    setup_hint = "see baselines/README.md, SmartEdit"
    cuda_only = True  # test/DS_SmartEdit_test.py makes its tensors on a hard-coded "cuda"
    option_kinds = {"steps": "positive_int", "sd_qformer_version": "str", "resize_resolution": "positive_int",
                    "num_inference_steps": "positive_int", "guidance_scale": "number", "image_guidance_scale": "number",
                    "temperature": "number"}
