"""What a ``state-<step>/`` folder holds: the trained parameters, the optimiser, the step and the RNG
states; never the frozen weights.

Frozen weights (LLaVA under LoRA, CLIP, the tiny configs' random frozen parts) are rebuilt identically
on resume: loaded again from the user's folders, or drawn again from the config's seed. Saving them at
every checkpoint would write 14 GB for the ``paper`` config. accelerate's own ``save_state`` writes the
folder; a save hook keeps only the tensors that train, under the FlexEditModel's own names whatever wraps
it (the training objective, DDP on several processes): the names do not depend on the number of processes.
A load hook reads them back into the FlexEditModel, once ``restore_state`` has checked that the folder
holds exactly the parameters this run trains.
"""

from __future__ import annotations

from pathlib import Path

from fsmi_bench.errors import BadInputError

MODEL_FILE = "model.safetensors"  # accelerate's name for the first model's state


def trained_names(model) -> set[str]:
    """The state-dict names of the parameters of ``model`` that train."""
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def _prefix(wrapped, model) -> str:
    """The state-dict prefix of ``model`` inside ``wrapped`` ("model." in the objective, "module.model." in DDP)."""
    for name, module in wrapped.named_modules():
        if module is model:
            return f"{name}." if name else ""
    raise ValueError("the model to save is not inside the prepared module")


def install(accelerator, model) -> None:
    """Make ``accelerator.save_state`` write the trained parameters of ``model`` (the FlexEditModel inside the
    prepared module) under its own names, and ``accelerator.load_state`` read them back into it."""

    def keep_trained_tensors(models, weights, output_dir) -> None:
        if weights:
            prefix, keep = _prefix(models[0], model), trained_names(model)
            weights[0] = {key[len(prefix):]: tensor for key, tensor in weights[0].items()
                          if key.startswith(prefix) and key[len(prefix):] in keep}

    def load_trained_tensors(models, input_dir) -> None:
        from safetensors.torch import load_file

        models.clear()  # loaded here, by the model's own names, rather than by accelerate into the wrapper
        model.load_state_dict(load_file(str(Path(input_dir) / MODEL_FILE)), strict=False)

    accelerator.register_save_state_pre_hook(keep_trained_tensors)
    accelerator.register_load_state_pre_hook(load_trained_tensors)


def restore_state(accelerator, model, folder: Path) -> None:
    """Load ``folder`` (trained parameters, optimiser, RNG) into ``model`` (the FlexEditModel the accelerator's
    hooks were installed for); BadInputError when the folder does not hold exactly the parameters this run
    trains (another config, or a damaged folder). Folders that also hold frozen weights (written before
    states were trimmed) load as well."""
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
    accelerator.load_state(str(folder))
