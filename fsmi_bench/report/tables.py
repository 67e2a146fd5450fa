"""Report tables: the paper's layouts, built once from the cells as ``Table`` records.

``build_tables`` turns cells (``aggregate.aggregate_cells``) into ``Table`` records; ``render.render_tables``
writes every format (Markdown, CSV, ``latex.py``) from those same records, so the formats never disagree.

Conventions, stated in every table's notes:
- a cell is ``mean [95 % bootstrap interval] n=cases``; values keep ``decimals`` decimals (4 by default,
  as the paper prints);
- by default every column compares the methods on the same (case, mask type) pairs
  (``aggregate.common_cases``), and a note gives each method's coverage;
- bold = best measured value of its column within its block (Full Mask, Free-Shape Mask, ...), by the
  metric's ``higher_is_better``; only when at least two methods that are not reference floors compete,
  on the same cases; ties are all bold;
- rows labelled "(floor)" are the reference baselines (``REFERENCE_FLOORS``): what any method should
  beat, never bold (``identity``'s background scores are perfect by construction);
- rows labelled "(reported)" are the paper's printed numbers: no interval, no n, never bold and never
  counted when choosing the bold cell, because they were measured on the authors' unreleased data;
- "—" marks a cell without a valid value; a numbered note gives the reason;
- with ``all_cases`` a cell measured on other cases than the rest of its column is marked (``unequal``)
  and that column has no bold cell;
- a cell some of whose outputs have no value (a case that lost some of its mask outputs is averaged
  over the rest) shows ``valid/all outputs`` beside n, and a numbered note gives the reason;
- every rule of the protocol that is fsmi's own choice, not SmartEdit's script's nor the paper's, is a
  note that says so, with its reason (``FsmiChoice`` in ``fsmi_bench.metrics.specs``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.aggregate import FREE_SHAPE, FULL, MEASURED, PER_MASK_TYPE_GROUPS, POOLED_GROUPS, MaskGroup
from fsmi_bench.report.notes import (
    ALL_CASES_NOTE,
    FLOOR_NOTE,
    REPORTED_NOTE,
    brief_note,
    coverage_note,
    fsmi_choice_notes,
    metric_note,
    missing_prefix,
    short_reason,
)
from fsmi_bench.schema import REPORTED

MISSING = "—"

MULTI_SECTIONS = (
    ("Foreground", ("fg_psnr", "fg_clip_t", "fg_clip_i", "fg_dinov2")),
    ("Whole Image", ("whole_psnr", "whole_lpips", "whole_clip_i", "whole_dinov2")),
)
SINGLE_SECTIONS = (
    ("Background", ("bg_psnr", "bg_ssim", "bg_lpips")),
    ("Foreground", ("fg_clip_t",)),
)
SECTIONS_BY_KIND = {"multi": MULTI_SECTIONS, "single": SINGLE_SECTIONS}


@dataclass(frozen=True)
class CellView:
    """One rendered cell. ``mean`` is NaN when the cell has no valid value; ``note`` is a note number or 0.
    ``n_outputs`` of ``n_outputs_total`` outputs have a value (NaN for reported rows)."""

    mean: float
    ci_low: float
    ci_high: float
    n: float
    bold: bool
    note: int
    reported: bool
    unequal: bool = False  # measured on other cases than the rest of its column (only with all_cases)
    n_outputs: float = float("nan")
    n_outputs_total: float = float("nan")

    @property
    def outputs_partial(self) -> bool:
        """True when some of the cell's outputs have no value (NaN counts, as in old leaderboards, are not)."""
        return not self.reported and self.n_outputs < self.n_outputs_total


@dataclass(frozen=True)
class Row:
    label: str
    method: str
    source: str
    cells: tuple[CellView, ...]


@dataclass(frozen=True)
class Block:
    label: str
    group: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Table:
    """A table of one kind: column sections of metrics, row blocks of mask groups, numbered notes."""

    title: str
    kind: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]
    blocks: tuple[Block, ...]
    notes: tuple[str, ...]
    higher_is_better: tuple[bool, ...]  # one per metric, in column order
    decimals: int = 4
    arrows: bool = True  # headers say which way is better (not where cells are differences or slopes)
    block_header: str = "Mask"  # what the blocks (row groups) are
    brief: str = ""  # the notes that no cell refers to, in one short paragraph for print (LaTeX)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(metric for _, metrics in self.sections for metric in metrics)


# Methods that need no learning and bound every table from below; shown as "(floor)", never bold.
REFERENCE_FLOORS = ("identity", "copy-paste", "inpaint")


@dataclass(frozen=True)
class TableOptions:
    """What a report shows. methods: measured methods to keep, in row order (None: all, by name);
    metrics: metric columns to keep (None: all of the layout); coverage: from ``aggregate.common_cases``
    (empty with ``all_cases``); decimals: digits after the point."""

    methods: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    decimals: int = 4
    all_cases: bool = False
    coverage: tuple = ()


def _best(values: list[float], higher_is_better: bool) -> float | None:
    finite = [value for value in values if not math.isnan(value)]
    if len(finite) < 2:
        return None
    return max(finite) if higher_is_better else min(finite)


def _row_order(cells: pd.DataFrame, reported_order: list[tuple[str, str]], kind: str,
               methods: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """Measured methods in the asked order (default: by name), then reported ones in the paper's order."""
    present_measured = set(cells.loc[cells["source"] == MEASURED, "method"])
    if methods is None:
        measured = sorted(present_measured)
    else:
        measured = [method for method in methods if method in present_measured]
    present = set(cells.loc[cells["source"] == REPORTED, "method"])
    reported = [method for row_kind, method in reported_order if row_kind == kind and method in present]
    return [(method, MEASURED) for method in measured] + [(method, REPORTED) for method in reported]


def _higher_by_name(metric: str) -> bool:
    """Direction of a metric absent from the results (its header arrow must still be right):
    LPIPS is a distance, every other metric of the protocol a similarity."""
    return not metric.endswith("_lpips")


_ROW_COUNT = re.compile(r" \(\d+ rows?\)")


def _note_number(notes: list[str], text: str) -> int:
    """The number of the note saying ``text``, added if new: cells that miss a value for the same
    reason (a missing weight, say) share one note instead of repeating it cell by cell."""
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def _build_table(title: str, kind: str, groups: tuple[MaskGroup, ...], cells: pd.DataFrame,
                 reported_order: list[tuple[str, str]], method_notes: str, options: TableOptions) -> Table | None:
    sections = tuple((name, tuple(metric for metric in metrics if options.metrics is None or metric in options.metrics))
                     for name, metrics in SECTIONS_BY_KIND[kind])
    sections = tuple((name, metrics) for name, metrics in sections if metrics)
    metrics = [metric for _, names in sections for metric in names]
    group_names = [group.name for group in groups]
    mine = cells[(cells["kind"] == kind) & cells["group"].isin(group_names) & cells["metric"].isin(metrics)]
    if options.methods is not None:
        mine = mine[(mine["source"] == REPORTED) | mine["method"].isin(options.methods)]
    if mine.empty:
        return None
    indexed = {tuple(key): row for key, row in zip(
        mine[["method", "source", "group", "metric"]].itertuples(index=False, name=None), mine.to_dict("records"))}
    notes: list[str] = [method_notes]
    higher = {metric: bool(mine.loc[mine["metric"] == metric, "higher_is_better"].iloc[0])
              for metric in metrics if (mine["metric"] == metric).any()}
    blocks = []
    any_floor = False
    for group in groups:
        present = mine[mine["group"] == group.name]
        if present.empty:
            continue
        order = _row_order(present, reported_order, kind, options.methods)
        best, unequal_sets = {}, {}
        for metric in metrics:
            competing = [indexed[(method, source, group.name, metric)] for method, source in order
                         if source == MEASURED and method not in REFERENCE_FLOORS
                         and (method, source, group.name, metric) in indexed]
            competing = [cell for cell in competing if not math.isnan(cell["mean"])]
            case_sets = {cell["case_set"] for cell in competing}
            unequal_sets[metric] = len(case_sets) > 1
            # Never a winner over unequal case sets: the bold cell could just have had easier cases.
            best[metric] = None if unequal_sets[metric] else \
                _best([cell["mean"] for cell in competing], higher.get(metric, _higher_by_name(metric)))
        rows = []
        for method, source in order:
            floor = source == MEASURED and method in REFERENCE_FLOORS
            any_floor = any_floor or floor
            views = []
            for metric in metrics:
                cell = indexed.get((method, source, group.name, metric))
                note, unequal = 0, False
                outputs = total = float("nan")
                if cell is None:
                    mean = low = high = n = float("nan")
                    if source == MEASURED:
                        note = _note_number(notes, "not in the results")
                else:
                    mean, low, high, n = cell["mean"], cell["ci_low"], cell["ci_high"], cell["n"]
                    outputs, total = cell.get("n_outputs", float("nan")), cell.get("n_outputs_total", float("nan"))
                    partial = source == MEASURED and (cell["n"] < cell["n_cases"] or outputs < total)
                    if (math.isnan(mean) or partial) and cell["reason"]:
                        reason = short_reason(_ROW_COUNT.sub("", cell["reason"]))
                        note = _note_number(notes, f"{missing_prefix(cell)}: {reason}")
                    unequal = options.all_cases and source == MEASURED and unequal_sets[metric] \
                        and not math.isnan(mean)
                bold = source == MEASURED and not floor and best[metric] is not None and not math.isnan(mean) \
                    and mean == best[metric]
                views.append(CellView(mean, low, high, n, bold, note, source == REPORTED, unequal, outputs, total))
            label = f"{method} (reported)" if source == REPORTED else f"{method} (floor)" if floor else method
            rows.append(Row(label, method, source, tuple(views)))
        blocks.append(Block(group.label, group.name, tuple(rows)))
    if any_floor:
        notes.append(FLOOR_NOTE)
    if (mine["source"] == REPORTED).any():
        notes.append(REPORTED_NOTE)
    if options.all_cases:
        notes.append(ALL_CASES_NOTE)
    else:
        measured_methods = [method for method, source in _row_order(mine, [], kind, options.methods)
                            if source == MEASURED]
        text = coverage_note(options.coverage, kind, metrics, measured_methods)
        if text:
            notes.append(text)
    notes.extend(fsmi_choice_notes(mine[mine["source"] == MEASURED], metrics))
    spec_note = metric_note(mine, metrics)
    if spec_note:
        notes.append(spec_note)
    return Table(title, kind, sections, tuple(blocks), tuple(notes),
                 tuple(higher.get(metric, _higher_by_name(metric)) for metric in metrics), options.decimals,
                 brief=brief_note(mine, metrics, options.all_cases))


def check_options(cells: pd.DataFrame, options: TableOptions) -> None:
    """Refuse methods and metrics the results do not hold, naming what they do hold."""
    import difflib

    for what, asked, column in (("method", options.methods, "method"), ("metric", options.metrics, "metric")):
        if asked is None:
            continue
        known = sorted(set(cells.loc[cells["source"] == MEASURED, column]) if what == "method" else set(cells[column]))
        for name in asked:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise BadInputError(f"--{what}s: {name!r} is not in the results{hint} (known: {', '.join(known)})")
    if not 0 <= options.decimals <= 10:
        raise BadInputError("--decimals must be between 0 and 10")


def build_tables(cells: pd.DataFrame, reported_order: list[tuple[str, str]], resamples: int,
                 seed: int, options: TableOptions = TableOptions()) -> list[Table]:
    """Table 1 (multi-image), Table 2 (single image), then breakdowns per mask type and per tag.

    ``reported_order``: (kind, method) of the reported rows in the paper's order.
    """
    check_options(cells, options)
    method_notes = (f"Cells: mean over cases [95 % bootstrap percentile interval, {resamples} resamples of "
                    f"cases, seed {seed}] n = cases with a valid value; a case's value over several mask "
                    "types is the mean over its mask types first. Bold: best measured value in its block, "
                    "among methods that are not floors.")
    tag_groups = tuple(MaskGroup(name, name.replace("=", " = "), ()) for name in
                       dict.fromkeys(group for group in cells["group"] if "=" in group))
    layouts = [
        ("Table 1: multi-image editing, full vs free-shape masks", "multi", (FULL, FREE_SHAPE)),
        ("Table 2: single-image editing", "single", POOLED_GROUPS),
        ("Multi-image editing by mask type", "multi", (FULL,) + PER_MASK_TYPE_GROUPS),
        ("Single-image editing by mask type", "single", (FULL,) + PER_MASK_TYPE_GROUPS),
        ("Multi-image editing by tag (all masks)", "multi", tag_groups),
        ("Single-image editing by tag (all masks)", "single", tag_groups),
    ]
    tables = []
    for title, kind, groups in layouts:
        table = _build_table(title, kind, groups, cells, reported_order, method_notes, options)
        if table is not None:
            tables.append(table)
    if not tables:
        raise BadInputError("the results hold none of the metrics of Tables 1 and 2 "
                            f"({', '.join(sorted({m for _, s in MULTI_SECTIONS + SINGLE_SECTIONS for m in s}))})")
    return tables


