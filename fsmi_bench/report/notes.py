"""The notes under report tables: metric labels, short metric specs, coverage, fsmi's own protocol choices,
what a cell lacks, and the fixed notes on reference floors and reported rows. Never a local path
(``without_paths``)."""

from __future__ import annotations

import json
import math
import re

import pandas as pd

from fsmi_bench.report.aggregate import MEASURED

MEASURE_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "clip_t": "CLIP-T", "clip_i": "CLIP-I",
                  "dinov2": "DINOv2", "seconds_per_edit": "s / edit", "peak_ram_gib": "peak RAM (GiB)",
                  "peak_gpu_gib": "peak GPU (GiB)"}
REPORTED_NOTE = ("Rows marked (reported) are the numbers printed in the FlexEdit paper (Yuan et al., 2024, "
                 "Tables 1 and 2), measured on the authors' unreleased FSMI-Edit data with hand-drawn masks: "
                 "they carry no interval, are not comparable case by case, and are never bolded. In its Table 1 "
                 "the whole-image CLIP-I (about 0.23) and DINOv2 (about 0.83) columns look swapped; they are "
                 "kept as printed. The paper does not say which masks its Table 2 used; it is shown under All Masks.")


def measure_label(metric: str) -> str:
    measure = metric.split("_", 1)[1] if "_" in metric else metric
    return MEASURE_LABELS.get(measure, measure)


FLOOR_NOTE = ("Rows marked (floor) are reference baselines without learning (identity returns the input, so its "
              "background scores are perfect by construction; copy-paste and inpaint are classical): they "
              "bound what a method should reach and are never bolded.")
ALL_CASES_NOTE = ("Each method over all its own valid cases (--all-cases); a dagger marks a cell measured on "
                  "other cases than the rest of its column, and such a column has no bold cell.")
_PATH = re.compile(r"(?:~|\.{0,2})?/(?:[^\s/:;,'\"()]+/)+([^\s/:;,'\"()]*)")


def without_paths(text: str) -> str:
    """``text`` with every file path reduced to its last part, so that no table shows a local folder
    (a user's home or cache)."""
    return _PATH.sub(lambda match: f".../{match.group(1)}" if match.group(1) else "a folder", text)


_MISSING_WEIGHTS = re.compile(r"missing weights '([^']+)'")


def missing_weight_names(reason: str, alternatives: bool = False) -> list[str]:
    """The weight names (``fsmi weights fetch`` NAMEs) that ``reason`` says are missing, in order: of each
    "A | or | B" (a metric that takes either), only A, or with ``alternatives`` only B and later ones."""
    names = []
    for part in reason.split("; "):
        choices = part.split(" | or | ")
        for choice in (choices[1:] if alternatives else choices[:1]):
            names.extend(_MISSING_WEIGHTS.findall(choice))
    return list(dict.fromkeys(names))


def fetch_hint(names) -> str:
    """How to get the weights ``names``: the command that downloads them and the one that says where."""
    one = len(names) == 1
    return (f"fsmi weights fetch {' '.join(names)} downloads {'it' if one else 'them'}, fsmi doctor shows "
            f"where {'it goes' if one else 'they go'}")


def short_reason(reason: str) -> str:
    """A reason for a table or a message: missing weights become their names and the command that fetches
    them (the long form, with every place looked at, is in the results rows and ``fsmi doctor``); any
    other reason loses its paths."""
    names = missing_weight_names(reason)
    if names and reason.startswith("missing_weights"):
        others = [name for name in missing_weight_names(reason, alternatives=True) if name not in names]
        instead = f" (or {', '.join(others)})" if others else ""
        return f"missing_weights: {', '.join(names)}{instead} not on this machine ({fetch_hint(names)})"
    return without_paths(reason)


def short_spec(metric: str, spec: str) -> str:
    """A metric's name, model, region rule and input size, from its spec JSON; never a path."""
    try:
        parsed = json.loads(spec)
    except (json.JSONDecodeError, TypeError):
        return metric
    if not isinstance(parsed, dict):
        return metric
    parts = [measure_label(metric)]
    model = parsed.get("model")
    if model and model != "none":
        parts.append(without_paths(str(model)))
    if parsed.get("region_mode"):
        parts.append(str(parsed["region_mode"]).replace("_", " "))
    size = parsed.get("size", parsed.get("input_size"))
    parts.append(f"{size} px" if size else "native size")
    return f"{metric} = {', '.join(parts)}"


def _span(counts: set[int]) -> str:
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def coverage_note(coverage, kind: str, metrics: list[str], methods: list[str]) -> str:
    """Under a table: how many (case, mask type) pairs each method has valid and how many every column
    compares; ranges when the metrics of the table differ."""
    mine = [item for item in coverage if item.kind == kind and item.metric in metrics and item.method in methods]
    if not mine:
        return ""
    compared = {item.compared for item in mine if item.valid}
    parts = []
    for method in methods:
        items = [item for item in mine if item.method == method]
        if not items:
            continue
        valid = {item.valid for item in items}
        total = max(item.total for item in items)
        parts.append(f"{method} {_span(valid)} of {total}")
    pooled = _span(compared) if compared else "0"
    return (f"Same cases for every method: each column compares the {pooled} (case, mask type) pairs that every "
            f"method with values has valid; pairs valid per method: {'; '.join(parts)}.")


def brief_note(mine: pd.DataFrame, metrics: list[str], all_cases: bool) -> str:
    """The table's notes in one short paragraph, for print (LaTeX): the cases compared, the protocol and
    version, the metrics that follow one of fsmi's own choices, and where the full notes are."""
    measured = mine[mine["source"] == MEASURED]
    chosen = [metric for metric in metrics if fsmi_choice_notes(measured, [metric])]
    choices = []  # "fg_*" for a prefix whose metrics here all follow one of fsmi's choices
    for prefix in dict.fromkeys(metric.split("_", 1)[0] for metric in chosen):
        family = [metric for metric in metrics if metric.startswith(prefix + "_")]
        choices += [f"{prefix}_*"] if all(metric in chosen for metric in family) and len(family) > 1 else \
            [metric for metric in family if metric in chosen]
    parts = ["each method over its own cases" if all_cases else "the same (case, mask type) pairs for every method "
             "in a column",
             f"protocol {', '.join(sorted(set(measured['protocol']) - {''})) or '?'}, benchmark "
             f"{', '.join(sorted(set(measured['benchmark_version']) - {''})) or '?'}"]
    if choices:
        parts.append(f"fsmi's own protocol choices for {', '.join(choices)}")
    text = "; ".join(parts)
    return f"{text[0].upper()}{text[1:]}. Full notes: fsmi report --markdown; metric specs: --specs FILE."


def metric_note(mine: pd.DataFrame, metrics: list[str]) -> str:
    """One short note: each metric's name, model, region rule and size, then protocol and version."""
    measured = mine[mine["source"] == MEASURED]
    texts = []
    for metric in metrics:
        specs = [spec for spec in dict.fromkeys(measured.loc[measured["metric"] == metric, "metric_spec"]) if spec]
        for spec in specs[:1]:
            texts.append(short_spec(metric, spec.split(" | ")[0]))
    versions = sorted(set(measured["benchmark_version"]) - {""})
    protocols = sorted(set(measured["protocol"]) - {""})
    if not texts and not versions and not protocols:
        return ""
    return (f"Protocol {', '.join(protocols) or '?'}, benchmark {', '.join(versions) or '?'}"
            + (f": {'; '.join(texts)}." if texts else ".") + " Full specs: fsmi report --specs FILE.")


def missing_prefix(cell: dict) -> str:
    """What a cell lacks: no value at all, or how many outputs and cases are without one."""
    if math.isnan(cell["mean"]):
        return "no valid value"
    n, n_cases = int(cell["n"]), int(cell["n_cases"])
    outputs, total = cell.get("n_outputs", float("nan")), cell.get("n_outputs_total", float("nan"))
    if math.isnan(outputs) or math.isnan(total):  # cells from a leaderboard that did not count outputs
        return f"{n_cases - n} of {n_cases} cases without a value"
    cases = (f"{n_cases - n} of {n_cases} cases without any" if n < n_cases
             else "every case keeps at least one")
    return (f"{int(total - outputs)} of {int(total)} outputs without a value ({cases}; a case's value is "
            "the mean over the outputs it has)")


def fsmi_choice_notes(cells: pd.DataFrame, metrics: list[str]) -> list[str]:
    """One note per rule that is fsmi's own choice in the specs of ``metrics`` (``fsmi_choices`` in a spec's
    JSON), naming the metrics it applies to, in the order the metrics come."""
    metrics_by_choice: dict[tuple[str, str], list[str]] = {}
    for metric in metrics:
        for spec in dict.fromkeys(cells.loc[cells["metric"] == metric, "metric_spec"]):
            for part in str(spec).split(" | "):
                try:
                    choices = json.loads(part).get("fsmi_choices") or {}
                except (json.JSONDecodeError, TypeError, AttributeError):
                    continue
                for name, text in choices.items():
                    found = metrics_by_choice.setdefault((name, text), [])
                    if metric not in found:
                        found.append(metric)
    return [f"fsmi's choice ({name}; neither SmartEdit's evaluator nor the paper fixes it) for "
            f"{', '.join(found)}: {text}" for (name, text), found in metrics_by_choice.items()]


def write_specs(path, cells: pd.DataFrame) -> None:
    """Every measured metric's full spec (JSON, one entry per metric and protocol), the long form of the
    tables' short metric note; paths are reduced to their last part, as in the tables."""
    from fsmi_bench.io import atomic_write_text

    measured = cells[cells["source"] == MEASURED]
    entries = []
    for (metric, protocol, version), rows in measured.groupby(["metric", "protocol", "benchmark_version"], sort=True):
        for spec in dict.fromkeys(part for text in rows["metric_spec"] for part in text.split(" | ") if part):
            try:
                parsed = json.loads(without_paths(spec))
            except json.JSONDecodeError:
                parsed = without_paths(spec)
            entries.append({"metric": metric, "protocol": protocol, "benchmark_version": version, "spec": parsed})
    atomic_write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
