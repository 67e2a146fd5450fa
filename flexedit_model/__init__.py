"""FlexEdit trainable in the repository: networks, pipeline, training loop and named configs.

Importing this package is cheap; the classes below are imported on first attribute access, which is
also how diffusers finds ``FlexEditModel`` and ``PixelShuffleAutoencoder`` when it loads a saved
``FlexEditPipeline`` (its ``model_index.json`` names the library ``flexedit_model``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "FlexEditConfig": "flexedit_model.config",
    "load_config": "flexedit_model.config",
    "FlexEditModel": "flexedit_model.model",
    "MaskEnhancedAdapter": "flexedit_model.mask_enhanced_adapter",
    "PixelShuffleAutoencoder": "flexedit_model.latent_codec",
    "FlexEditPipeline": "flexedit_model.pipeline_flexedit",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'flexedit_model' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
