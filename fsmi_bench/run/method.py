"""The method interface: how any editing method edits one case.

A method is a subclass of ``Method``. The run engine owns everything else: iteration, seeding, resume,
sharding, size mapping, provenance and failure capture. ``fsmi run --method`` finds it:
- by name: the package's own (one file in ``baselines/`` plus one ``METHODS.register`` line below), or
  one that an installed package declares in the entry-point group ``fsmi.methods``
  (``[project.entry-points."fsmi.methods"] my-edit = "my_package.module:MyEdit"`` in its pyproject.toml);
- by target, without registering anything: ``package.module:Class`` (importable) or
  ``path/to/file.py:Class``. Its results go under a clean name (``method_name``): the class's ``name``
  if it sets one, else the class name; the target itself is kept in run.json (``method_target``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsmi_bench.errors import BadInputError, FsmiError, MethodError
from fsmi_bench.registry import BUILT_IN, Registry
from fsmi_bench.schema import METHOD_NAME_RULE

if TYPE_CHECKING:  # `fsmi ls methods` reads the registry below without loading numpy
    import numpy as np


@dataclass(frozen=True, eq=False)
class EditRequest:
    """One edit to make.

    scene: RGB uint8 (H, W, 3), the image to edit.
    subject: RGB uint8 (h, w, 3) reference image of the object to insert (multi-image cases), else None.
    mask: bool (H, W), True = the region the user marked for editing (a free-shape or full mask).
    instruction: the language instruction.
    label: the object's class label.
    seed: the seed for this edit; a method must give the same output for the same seed.
    case_id, mask_type, kind, op, complexity: for logging and for methods that want them
    (complexity: "simple" = subject alone on a plain background, "complex" = with its own background,
    "none" for single-image cases).
    subject_mask: bool (h, w), True = the subject's own pixels in ``subject`` (the object's true mask,
    known to the benchmark builder), or None when the benchmark does not give it.
    """

    scene: np.ndarray
    subject: np.ndarray | None
    mask: np.ndarray
    instruction: str
    label: str
    seed: int
    case_id: str = ""
    mask_type: str = ""
    kind: str = "single"
    op: str = "add"
    complexity: str = "none"
    subject_mask: np.ndarray | None = None


@dataclass(frozen=True)
class CheckItem:
    """One line of a method's pre-flight: what was checked, ``status`` "ok", "fail" (the run cannot start)
    or "skip" (not checkable here, e.g. GPU memory without a GPU), and ``detail`` (one line)."""

    item: str
    status: str
    detail: str = ""


class Method:
    """Base class of editing methods.

    Contract:
    - ``edit(request)`` returns an RGB uint8 image. It may be of any size; the run engine maps it back
      to the scene's size (and records the mapping). Returning the scene's size is best.
    - Mask polarity: True = region to edit.
    - Deterministic: the same request (same seed) gives the same image.
    - Heavy set-up (loading weights) belongs in ``__init__`` or ``setup``, done once per run.
    - Raise an exception for a failed edit: the run engine records it and goes on.
    - ``close()`` frees resources (worker processes, GPU memory).

    ``config`` holds the method's options (from ``--config FILE`` and flags) and is recorded in run.json.
    ``weights`` maps a name to a local path; each is hashed into run.json.
    """

    name = "method"

    def __init__(self, config: dict | None = None, device: str = "cpu"):
        self.config = dict(config or {})
        self.device = device

    def setup(self) -> None:
        """Load models. Called once before the first edit."""

    def preflight(self) -> list[CheckItem]:
        """What the method needs (files, packages, GPU memory), checked in seconds without loading a
        model; `fsmi run` refuses to start on any "fail" item and `fsmi doctor --method` prints them all.
        Empty: nothing to check beyond ``setup``."""
        return []

    def edit(self, request: EditRequest) -> np.ndarray:
        raise NotImplementedError

    def weights(self) -> dict[str, str]:
        """Local weight files or folders this method loaded, name -> path (hashed into run.json)."""
        return {}

    def close(self) -> None:
        """Free resources."""


# The entry-point group through which installed packages add methods (listed by `fsmi ls methods`).
METHODS_ENTRY_POINT_GROUP = "fsmi.methods"
METHODS = Registry("method", entry_point_group=METHODS_ENTRY_POINT_GROUP, accepts_targets=True, base_class=Method,
                   name_rule=METHOD_NAME_RULE)

# One line per method: name, lazy "module:Class" target, summary, what it needs ("weights", "GPU",
# "checkout"). Nothing is imported until the method is used, so `fsmi ls methods` stays instant.
METHODS.register("identity", "baselines.identity:Identity",
                 "returns the scene unchanged (the floor of every table)", needs=())
METHODS.register("copy-paste", "baselines.copy_paste:CopyPaste",
                 "multi: the subject, cut out, scaled into the mask's bounding box; single: inpaints for "
                 "remove, returns the scene for add/replace", needs=())
METHODS.register("inpaint", "baselines.inpaint:Inpaint",
                 "classical inpainting (OpenCV Telea) of the mask area, whatever the operation", needs=())
METHODS.register("instruct-pix2pix", "baselines.instruct_pix2pix:InstructPix2Pix",
                 "InstructPix2Pix (diffusers); mask ignored, as in the paper", needs=("weights", "GPU"),
                 hf_model_id="timbrooks/instruct-pix2pix")
METHODS.register("sd-inpaint", "baselines.sd_inpaint:SdInpaint",
                 "Stable Diffusion inpainting (diffusers); mask = inpainting mask, prompt = label",
                 needs=("weights", "GPU"), hf_model_id="stable-diffusion-v1-5/stable-diffusion-inpainting")
METHODS.register("paint-by-example", "baselines.paint_by_example:PaintByExample",
                 "Paint-by-Example (diffusers); subject as exemplar, multi-image cases", needs=("weights", "GPU"),
                 hf_model_id="Fantasy-Studio/Paint-by-Example")
METHODS.register("anydoor", "baselines.anydoor:AnyDoor",
                 "AnyDoor official code in its own environment; mask reduced to its bounding box",
                 needs=("weights", "GPU", "checkout"),
                 weights="config keys python, checkout and weights: see baselines/README.md")
METHODS.register("largen", "baselines.largen:Largen",
                 "LAR-Gen through scepter's LargenInference in its own environment",
                 needs=("weights", "GPU", "checkout"),
                 weights="config keys python, checkout and weights: see baselines/README.md")
METHODS.register("smartedit", "baselines.smartedit:SmartEdit",
                 "SmartEdit official test-script model in its own environment; mask ignored",
                 needs=("weights", "GPU", "checkout"),
                 weights="config keys python, checkout and weights: see baselines/README.md")
METHODS.register("instructany2pix", "baselines.instructany2pix:InstructAny2Pix",
                 "InstructAny2Pix official pipeline in its own environment; mask ignored",
                 needs=("weights", "GPU", "checkout"),
                 weights="config keys python, checkout and weights: see baselines/README.md")
METHODS.register("flexedit", "baselines.flexedit:FlexEditMethod",
                 "FlexEdit trained in the repository (fsmi train flexedit); --weights DIR", needs=("weights",),
                 weights="a checkpoint folder written by `fsmi train flexedit`, given as --weights DIR")


@dataclass(frozen=True)
class MethodChoice:
    """The method a run uses: ``name``, the one its results go under, and ``target``, where its class came
    from (``package.module:Class`` or ``/absolute/path/file.py:Class``; None for the package's own)."""

    name: str
    target: str | None = None


def check_method_name(name, where: str) -> str:
    """``name`` if it is a method name (``schema.METHOD_NAME_RULE``, the one rule for every origin), else one
    ``BadInputError`` starting with ``where``."""
    if not isinstance(name, str) or not re.fullmatch(METHOD_NAME_RULE, name):
        raise BadInputError(f"{where} {str(name)[:80]!r} is not a method name: 1 to 128 letters, digits, spaces "
                            "and _ . + -, starting with a letter or digit (it names the run's folder), e.g. my-method")
    return name


def method_name(method_class: type) -> str:
    """The name a class's results go under: its ``name`` attribute if it (or a base of its own) sets one,
    else the class name. Must be a method name (``check_method_name``) and not one of the registered
    methods', so that two different methods never share a row label."""
    name = getattr(method_class, "name", None)
    if not isinstance(name, str) or not name or name == Method.name:
        name = method_class.__name__
    where = f"{method_class.__module__}.{method_class.__qualname__}"
    check_method_name(name, f"{where}: name (set `name = \"...\"` on the class)")
    if name in METHODS and METHODS.entry(name).target != f"{method_class.__module__}:{method_class.__qualname__}":
        raise BadInputError(f"{where} is named {name!r}, the name of a registered method; set another "
                            "`name = \"...\"` on the class so that their results do not mix")
    return name


def choose_method(spec: str) -> MethodChoice:
    """What ``fsmi run --method SPEC`` runs: a registered name keeps its name (an entry point's target is
    recorded too); a target is imported and named by ``method_name``, its file made absolute for the record.
    Raises ``BadInputError`` (one line) for an unknown name or a bad target."""
    entry = METHODS.entry(spec)
    if entry.origin == BUILT_IN:
        return MethodChoice(spec)
    if entry.origin not in ("module", "file"):  # an entry point: registered by name in its package
        return MethodChoice(entry.name, entry.target)
    method_class = METHODS.get(spec)
    location, _, attribute = spec.rpartition(":")
    target = f"{Path(location).resolve()}:{attribute}" if entry.origin == "file" else spec
    return MethodChoice(method_name(method_class), target)


def instance_choice(method: Method) -> MethodChoice:
    """The choice for a method object given directly (the Python API): named as its class would be."""
    method_class = type(method)
    name, target = method_name(method_class), f"{method_class.__module__}:{method_class.__qualname__}"
    if name in METHODS and METHODS.entry(name).origin == BUILT_IN:
        return MethodChoice(name)  # the package's own class, run as an object: the same as by name
    return MethodChoice(name, target)


def call_method(method: str, step: str, function, *args):
    """``function(*args)``, one step of a method's own code (``step``: "__init__()", "setup()", "preflight()",
    "weights()", "close()"): anything it raises, ``sys.exit`` included, becomes one ``MethodError`` naming the
    method and the step. Errors of fsmi's own kinds pass as they are; Ctrl-C too."""
    try:
        return function(*args)
    except FsmiError:
        raise
    except (Exception, SystemExit) as error:
        detail = f"sys.exit({error.code!r})" if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
        raise MethodError(f"method {method}: {step} raised {detail}"[:2000]) from None


def close_quietly(method: Method) -> None:
    """``method.close()`` while another error is already on its way: that error is the one to report."""
    try:
        method.close()
    except (Exception, SystemExit):
        pass
