"""What each method's edits cost, from the run.json of its run folders: seconds per edit and peak memory.

``fsmi run`` records, per invocation, the wall time of the outputs it wrote and the peak memory of its
process (``run.record.RunCost``); a method's cost sums its invocations (and shards, and several folders of
the same method) per device. Costs live in run.json, never in the results tables, so that a results
table stays the same bytes however fast the machine was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fsmi_bench.report.tables import REFERENCE_FLOORS, Block, CellView, Row, Table

COST_SECTIONS = (("Cost", ("cost_seconds_per_edit", "cost_peak_ram_gib", "cost_peak_gpu_gib")),)
GIB = float(1 << 30)
NO_COST = "its run.json records no cost (made by an fsmi older than this record)"
NO_GPU = "CUDA not used by this process"


@dataclass(frozen=True)
class MethodCost:
    """The cost of one method's runs on one device: ``edits`` outputs written in ``edit_seconds``;
    peaks over its invocations (None when no invocation recorded one)."""

    method: str
    device: str
    edits: int
    edit_seconds: float
    peak_rss_bytes: int | None
    peak_gpu_bytes: int | None
    recorded: bool  # at least one invocation recorded its cost


def read_costs(run_dirs) -> list[MethodCost]:
    """One ``MethodCost`` per (method, device) of the run folders ``run_dirs``, by method name, from the
    invocations that wrote outputs."""
    from fsmi_bench.run.folder import load_run

    totals: dict[tuple[str, str], dict] = {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        device = str(run.info.get("device") or "?")
        total = totals.setdefault((run.method, device), {"edits": 0, "seconds": 0.0, "rss": None, "gpu": None,
                                                         "recorded": False})
        for invocation in run.info.get("invocations") or []:
            cost = invocation.get("cost")
            if not isinstance(cost, dict):
                continue
            total["recorded"] = True
            if not cost.get("edits"):  # a run resumed with nothing to do says nothing of the method's cost
                continue
            total["edits"] += int(cost.get("edits") or 0)
            total["seconds"] += float(cost.get("edit_seconds") or 0.0)
            for key, name in (("rss", "peak_rss_bytes"), ("gpu", "peak_gpu_bytes")):
                if cost.get(name) is not None:
                    total[key] = max(total[key] or 0, int(cost[name]))
    return [MethodCost(method, device, total["edits"], total["seconds"], total["rss"], total["gpu"], total["recorded"])
            for (method, device), total in sorted(totals.items())]


def _cell(value: float | None, note: int = 0) -> CellView:
    nan = float("nan")
    mean = nan if value is None else float(value)
    return CellView(mean, nan, nan, nan, False, note if math.isnan(mean) else 0, False)


def _note(notes: list[str], text: str) -> int:
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def cost_table(costs: list[MethodCost], decimals: int, methods: tuple[str, ...] | None = None) -> Table | None:
    """A table of ``costs``, a block per device, methods in ``methods`` order (default: by name)."""
    if methods is not None:
        order = {method: index for index, method in enumerate(methods)}
        costs = sorted((cost for cost in costs if cost.method in order), key=lambda cost: order[cost.method])
    if not costs:
        return None
    edits = ", ".join(f"{cost.method} {cost.edits}" for cost in costs if cost.recorded)
    notes = [("Seconds per edit: wall time of the outputs each run wrote (the method's edit, mapping to the scene's "
              "size and the PNG write; model loading and outputs found done not included), over its edits"
              + (f" ({edits})" if edits else "") + ". Peak RAM: the fsmi run process's resident memory from the "
              "run's start, model loading included (on Linux; elsewhere from the process's start; a method run in "
              "a worker process of its own is not in it); peak GPU: torch's peak allocated CUDA memory; the "
              "largest over a method's invocations. Times compare methods only on one machine.")]
    blocks = []
    for device in dict.fromkeys(cost.device for cost in costs):
        rows = []
        for cost in (cost for cost in costs if cost.device == device):
            missing = 0 if cost.recorded else _note(notes, NO_COST)
            gpu_missing = _note(notes, NO_GPU) if cost.recorded and cost.peak_gpu_bytes is None else missing
            per_edit = cost.edit_seconds / cost.edits if cost.edits else None
            cells = (_cell(per_edit, missing),
                     _cell(None if cost.peak_rss_bytes is None else cost.peak_rss_bytes / GIB, missing),
                     _cell(None if cost.peak_gpu_bytes is None else cost.peak_gpu_bytes / GIB, gpu_missing))
            label = f"{cost.method} (floor)" if cost.method in REFERENCE_FLOORS else cost.method
            rows.append(Row(label, cost.method, "measured", cells))
        blocks.append(Block(device, f"device={device}", tuple(rows)))
    return Table("Cost per method (from run.json)", "cost", COST_SECTIONS, tuple(blocks), tuple(notes),
                 (False, False, False), decimals, arrows=False, block_header="Device", brief=notes[0])
