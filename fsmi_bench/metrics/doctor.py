"""``fsmi doctor``: every metric and method, the weights each needs, and whether they are here.

Only looks; never loads a model and never downloads. Absent weights are the normal state on a fresh
machine, so nothing here raises for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsmi_bench.errors import MissingWeightsError


@dataclass(frozen=True)
class WeightCheck:
    """One weight of one metric or method: where it was found (or looked for) and its sha256."""

    weight: str
    present: bool
    path: str
    sha256: str
    looked: tuple[str, ...]
    hint: str


@dataclass(frozen=True)
class DoctorEntry:
    """A metric (``kind`` "metric") or method (``kind`` "method") and what it needs.

    ``checks``: the weights of the preferred model. ``alternatives``: (model, its checks) for each
    model accepted instead (a CLIP metric takes the Hugging Face folder or the open_clip checkpoint).
    """

    kind: str
    name: str
    detail: str
    checks: tuple[WeightCheck, ...]
    alternatives: tuple[tuple[str, tuple[WeightCheck, ...]], ...] = ()

    @property
    def ready(self) -> bool:
        return all(check.present for check in self.checks) or any(
            all(check.present for check in checks) for _, checks in self.alternatives)


def _check(name: str, explicit: dict) -> WeightCheck:
    from fsmi_bench.metrics.weights import REQUIREMENTS, resolve

    requirement = REQUIREMENTS[name]
    hint = f"${requirement.env} or --weights {name}=PATH: {requirement.description}"
    try:
        resolved = resolve(name, explicit)
    except MissingWeightsError as error:
        return WeightCheck(name, False, "", "", (str(error),), hint)
    return WeightCheck(name, resolved.present, str(resolved.path or ""), resolved.sha256 or "",
                       resolved.looked, hint)


def doctor_entries(explicit: dict | None = None, protocol: str = "paper") -> list[DoctorEntry]:
    """One entry per metric (under ``protocol``'s models; both protocols listed if None) and per method."""
    from fsmi_bench.metrics.specs import ALL_METRICS, PROTOCOLS
    from fsmi_bench.metrics.weights import MODEL_WEIGHTS
    from fsmi_bench.run.method import METHODS

    explicit = dict(explicit or {})
    protocols = [protocol] if protocol else list(PROTOCOLS)
    entries = []
    for name in ALL_METRICS:
        for protocol_name in protocols:
            spec = PROTOCOLS[protocol_name][name]
            checks = tuple(_check(weight, explicit) for weight in MODEL_WEIGHTS.get(spec.model, ()))
            alternatives = tuple((model, tuple(_check(weight, explicit) for weight in MODEL_WEIGHTS[model]))
                                 for model in spec.fallback_models)
            models = " or ".join(spec.accepted_models)
            detail = (f"{protocol_name}: {spec.measure}, {spec.region_mode}, "
                      f"{'native size' if spec.size is None else f'{spec.size}x{spec.size}'}"
                      + (f", {models}" if spec.model else ", no weights needed"))
            entries.append(DoctorEntry("metric", name, detail, checks, alternatives))
    for entry in METHODS.entries():
        needs = ", ".join(entry.needs) if entry.needs else "nothing"
        weight_note = entry.extra.get("weights", "")
        detail = f"needs {needs}" + (f" ({weight_note})" if weight_note else "")
        checks = ()
        if "hf_model_id" in entry.extra:
            checks = (_hf_cache_check(entry.extra["hf_model_id"]),)
        elif "weights" in entry.needs and not weight_note:
            detail += " (give them to `fsmi run --weights PATH`)"
        entries.append(DoctorEntry("method", entry.name, detail, checks))
    return entries


def _hf_cache_check(model_id: str) -> WeightCheck:
    """Whether a diffusers model is in the local Hugging Face cache (where `fsmi run` finds it
    without --weights)."""
    import glob
    import os

    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    pattern = os.path.join(hub, f"models--{model_id.replace('/', '--')}", "snapshots", "*", "model_index.json")
    found = sorted(glob.glob(pattern))
    path = os.path.dirname(found[-1]) if found else ""
    return WeightCheck(model_id, bool(found), path, "folder (not hashed here)" if found else "",
                       (pattern,), f"run `fsmi run --weights PATH` with a local diffusers folder of {model_id}, "
                                   f"or put it in the Hugging Face cache ({hub})")


def doctor_lines(entries: list[DoctorEntry], verbose: bool = False) -> list[str]:
    """Human-readable report: one line per entry, one per weight (with where it looked if missing)."""
    lines = []
    for kind, title in (("metric", "Metrics"), ("method", "Methods")):
        lines.append(f"{title}:")
        for entry in (e for e in entries if e.kind == kind):
            state = "ready" if entry.ready else "MISSING WEIGHTS"
            if kind == "method" and not entry.checks and not entry.detail.startswith("needs nothing"):
                state = "given to run"  # these weights are passed to `fsmi run`, not looked up here
            lines.append(f"  {entry.name:<17} {state:<16} {entry.detail}")
            for model, checks in ((None, entry.checks),) + entry.alternatives:
                if model is not None:
                    lines.append(f"    or, instead, {model}:")
                for check in checks:
                    if check.present:
                        lines.append(f"      {check.weight}: {check.path} sha256 {check.sha256}")
                    else:
                        lines.append(f"      {check.weight}: not found; {check.hint}")
                        if verbose:
                            lines.extend(f"        looked: {place}" for place in check.looked)
    return lines
