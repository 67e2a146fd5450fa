"""A method's pre-flight: the checklist `fsmi doctor --method` prints and `fsmi run` checks before any case."""

from __future__ import annotations

from fsmi_bench.errors import MethodError, MissingWeightsError
from fsmi_bench.run.method import METHODS, CheckItem, Method, call_method, close_quietly

STATUS_MARKS = {"ok": "ok  ", "fail": "FAIL", "skip": "--  "}


def method_checklist(method: str, method_config: dict, device: str = "cuda") -> list[CheckItem]:
    """The checklist of ``method`` (a name or target) with its config; loads no model."""
    instance = call_method(method, "__init__()", METHODS.get(method), dict(method_config), device)
    try:
        return preflight_items(method, instance)
    finally:
        close_quietly(instance)


def preflight_items(method: str, instance: Method) -> list[CheckItem]:
    """``instance.preflight()``, checked to be a list of ``CheckItem`` (a method's own code may return anything)."""
    items = call_method(method, "preflight()", instance.preflight)
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, CheckItem) for item in items):
        raise MethodError(f"method {method}: preflight() returned {type(items).__name__}, not a list of "
                          "fsmi_bench.run.method.CheckItem")
    return list(items)


def checklist_lines(method: str, items: list[CheckItem]) -> list[str]:
    """The checklist as text, one line per item, then a verdict line."""
    lines = [f"{STATUS_MARKS.get(entry.status, entry.status)}  " + _item_text(entry) for entry in items]
    failing = [entry for entry in items if entry.status == "fail"]
    if not items:
        lines.append(f"{method}: no pre-flight checklist (it runs in this python; `fsmi doctor` without --method "
                     "lists the weights of every method and metric)")
    elif failing:
        lines.append(f"{method}: not ready, {len(failing)} problem{'s' if len(failing) > 1 else ''}")
    else:
        lines.append(f"{method}: ready")
    return lines


def config_hint(method: str) -> str:
    """The line `fsmi doctor --method` adds when no --config was given and the checklist failed."""
    where = getattr(METHODS.get(method), "setup_hint", "") or "see baselines/README.md"
    return (f"{method}: no --config given; pass the method's config file, e.g. "
            f"`fsmi doctor --method {method} --config {method}.json` ({where})")


def _item_text(entry: CheckItem) -> str:
    if entry.status == "fail":
        return entry.detail or entry.item  # a problem line names what it is about
    if entry.status == "skip":
        return f"{entry.item}: {entry.detail}"
    return entry.item + (f" ({entry.detail})" if entry.detail else "")


def require_ready(method: str, items: list[CheckItem]) -> None:
    """Raise one line naming every failing item; `fsmi run` calls this before its first case."""
    failing = [entry.detail or entry.item for entry in items if entry.status == "fail"]
    if failing:
        raise MissingWeightsError(f"{method} is not ready: {'; '.join(failing)} "
                                  f"(`fsmi doctor --method {method} --config FILE` lists every check)")
