"""What a ``state-<step>/`` folder holds: the trained parameters, the optimiser, the step and the RNG
states; never the frozen weights.

Frozen weights (LLaVA under LoRA, CLIP, the tiny configs' random frozen parts) are rebuilt identically
on resume: loaded again from the user's folders, or drawn again from the config's seed. Saving them at
every checkpoint would write 14 GB for the ``paper`` config. accelerate's own ``save_state`` writes the
folder; a save hook drops every tensor that does not train, and ``restore_state`` loads the rest and
checks that the folder holds exactly the parameters this run trains.
"""

from __future__ import annotations

from pathlib import Path

from fsmi_bench.errors import BadInputError

MODEL_FILE = "model.safetensors"  # accelerate's name for the first model's state


def trained_names(model) -> set[str]:
    """The state-dict names of the parameters that train (as accelerate names them: wrapped or not)."""
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def keep_trained_tensors(models, weights, output_dir) -> None:
    """accelerate save-state hook: reduce each model's state dict to its trained parameters (in place)."""
    for index, model in enumerate(models):
        if index < len(weights):
            keep = trained_names(model)
            weights[index] = {key: tensor for key, tensor in weights[index].items() if key in keep}


def install(accelerator) -> None:
    """Make ``accelerator.save_state`` write trained parameters only."""
    accelerator.register_save_state_pre_hook(keep_trained_tensors)


def restore_state(accelerator, model, folder: Path) -> None:
    """Load ``folder`` (trained parameters, optimiser, RNG) into the prepared ``model``; BadInputError when the
    folder does not hold exactly the parameters this run trains (another config, or a damaged folder).
    Folders that also hold frozen weights (written before states were trimmed) load as well."""
    from safetensors import safe_open

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise BadInputError(f"{folder} is not a training state: {MODEL_FILE} is missing; "
                            "remove it or use another --out")
    with safe_open(str(path), "pt") as handle:
        saved = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    shapes = {name: tuple(parameter.shape) for name, parameter in model.named_parameters()}
    wrong = sorted(name for name in trained_names(model) if saved.get(name) != shapes[name])
    wrong += sorted(key for key in saved if key in shapes and saved[key] != shapes[key] and key not in wrong)
    if wrong:
        raise BadInputError(f"{folder} does not match this config: {len(wrong)} trained parameters are missing "
                            f"from it or shaped differently (e.g. {wrong[0]}); "
                            "resume with the config it was written with")
    accelerator.load_state(str(folder), strict=False)
