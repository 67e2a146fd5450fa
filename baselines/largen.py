"""LAR-Gen / Largen (Pan et al., 2024) through scepter's ``LargenInference``, in the user's environment.

Config: python, checkout (modelscope/scepter), ms_models ({ModelScope model id: local snapshot
folder}, for ``iic/LARGEN`` and ``AI-ModelScope/clip-vit-large-patch14``: the yaml's ``ms://``
references are read from there, nothing is downloaded), model_yaml (default scepter's
``largen_pro.yaml``), output_size (1024), sample_steps (50), guide_scale (7.5), image_scale (1.0),
subject_task, prompt_template ("{label}"), remove_prompt, case_timeout_s, startup_timeout_s.
Mask: the inpainting mask as is for text-guided (single-image) cases; its bounding box for
text-subject-guided (multi-image) cases, done by scepter's own preprocessing; the subject's true mask
as the reference mask. See baselines/drivers/largen_driver.py and baselines/README.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from baselines.worker_protocol import DRIVERS_DIR, WorkerMethod


def _driver():
    # the driver's own yaml reading, so the path hashed here is the one the worker opens
    spec = importlib.util.spec_from_file_location("fsmi_largen_driver", DRIVERS_DIR / "largen_driver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Largen(WorkerMethod):
    name = "largen"
    driver_file = "largen_driver.py"
    checkout_marker = "scepter/modules/inference/largen_inference.py"
    setup_hint = "see baselines/README.md, LAR-Gen"
    option_kinds = {"model_yaml": "str", "ms_models": "str_mapping", "output_size": "positive_int",
                    "sample_steps": "positive_int", "guide_scale": "number", "image_scale": "number",
                    "subject_task": "str", "prompt_template": "str", "remove_prompt": "str", "negative_prompt": "str"}

    def weights(self) -> dict[str, str]:
        import yaml

        driver = _driver()
        checkout = Path(str(self.config.get("checkout", ""))).expanduser()
        model_yaml = checkout / (self.config.get("model_yaml") or driver.DEFAULT_MODEL_YAML)
        if not model_yaml.is_file():
            return {}
        checkpoint = ((yaml.safe_load(model_yaml.read_text()) or {}).get("MODEL") or {}).get("PRETRAINED_MODEL")
        if isinstance(checkpoint, str) and checkpoint.startswith(driver.MODELSCOPE_PREFIX):
            checkpoint = driver.local_path(checkpoint, self.config.get("ms_models") or {})
        return {"largen": str(checkpoint)} if checkpoint and Path(checkpoint).is_file() else {}
