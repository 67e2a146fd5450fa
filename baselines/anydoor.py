"""AnyDoor (Chen et al., 2024) through its official code, in the user's own environment.

Config: python, checkout (ali-vilab/AnyDoor; its configs/inference.yaml names the checkpoint and the
model config, as the official README says), guidance_scale (5.0), case_timeout_s, startup_timeout_s.
Mask: reduced to its bounding box. Multi-image cases only (needs the subject). See
baselines/drivers/anydoor_driver.py and baselines/README.md.
"""

from __future__ import annotations

from pathlib import Path

from baselines.worker_protocol import WorkerMethod
from fsmi_bench.errors import BadInputError, MissingWeightsError


class AnyDoor(WorkerMethod):
    name = "anydoor"
    driver_file = "anydoor_driver.py"
    checkout_marker = "run_inference.py"
    setup_hint = "see baselines/README.md, AnyDoor"
    option_kinds = {"guidance_scale": "number"}

    def _checkpoint(self) -> Path:
        import yaml

        checkout = Path(str(self.config.get("checkout", ""))).expanduser()
        settings_path = checkout / "configs" / "inference.yaml"
        if not settings_path.is_file():
            raise BadInputError(f"anydoor: {settings_path} not found; check config key 'checkout'")
        settings = yaml.safe_load(settings_path.read_text()) or {}
        checkpoint = checkout / str(settings.get("pretrained_model", ""))
        if not settings.get("pretrained_model") or not checkpoint.is_file():
            raise MissingWeightsError(f"anydoor: checkpoint {checkpoint} not found; download AnyDoor's epoch=1-step=8687.ckpt "
                                      f"and set pretrained_model in {settings_path}")
        return checkpoint

    def worker_spec(self):
        spec = super().worker_spec()
        self._checkpoint()
        return spec

    def weights(self) -> dict[str, str]:
        return {"anydoor": str(self._checkpoint())}
