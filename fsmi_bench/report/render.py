"""Writing ``Table`` records as Markdown, CSV or (through ``latex.py``) LaTeX: one function per format."""

from __future__ import annotations

import math
import re

import pandas as pd

from fsmi_bench.errors import BadInputError
from fsmi_bench.report.latex import render_latex
from fsmi_bench.report.notes import measure_label
from fsmi_bench.report.tables import MISSING, CellView, Table

FORMATS = ("markdown", "latex", "csv")


UNEQUAL_MARK = "†"
_MARKDOWN_SPECIAL = {"\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`", "\n": " ", "\r": " "}
# What could start raw HTML (a tag, a closing tag, a comment, a declaration) or a character reference in
# CommonMark: only these "<" and "&" are escaped, so that "n < 10" and "IoU ≥ 0.7 & < 1" read as written.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])|&(?=#|[A-Za-z][A-Za-z0-9]*;)")


def markdown_escape(text: str) -> str:
    """``text`` safe in a Markdown table cell: ``|`` cannot split the cell, ``*`` cannot start emphasis,
    and HTML (``<script>``, ``&lt;``) shows as text where renderers allow inline HTML. ``_`` is kept: inside
    a word it starts no emphasis in GitHub's Markdown, and metric names stay readable."""
    text = "".join(_MARKDOWN_SPECIAL.get(char, char) for char in str(text))
    return _HTML_START.sub(lambda match: "&lt;" if match.group() == "<" else "&amp;", text)


def markdown_cell(cell: CellView, decimals: int = 4) -> str:
    def number(value: float) -> str:
        return f"{value:.{decimals}f}"

    if math.isnan(cell.mean):
        text = MISSING
    elif cell.reported or math.isnan(cell.ci_low):
        text = number(cell.mean)
    else:
        text = f"{number(cell.mean)} [{number(cell.ci_low)}, {number(cell.ci_high)}] n={int(cell.n)}"
        if cell.outputs_partial:
            text += f" ({int(cell.n_outputs)}/{int(cell.n_outputs_total)} outputs)"
    if cell.bold:
        text = f"**{text}**"
    if cell.unequal:
        text += UNEQUAL_MARK
    if cell.note:
        text += f" ({cell.note})"
    return text


def render_markdown(tables: list[Table]) -> str:
    parts = []
    for table in tables:
        labels = [f"{section} {measure_label(metric)}" for section, metrics in table.sections for metric in metrics]
        header = [table.block_header, "Method"] + [f"{label} {'↑' if higher else '↓'}" if table.arrows else label
                                       for label, higher in zip(labels, table.higher_is_better)]
        parts.append(f"### {markdown_escape(table.title)}\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "|".join(["---"] * 2 + ["---:"] * len(table.metrics)) + "|")
        for block in table.blocks:
            for index, row in enumerate(block.rows):
                first = markdown_escape(block.label) if index == 0 else ""
                cells = [markdown_cell(cell, table.decimals) for cell in row.cells]
                parts.append("| " + " | ".join([first, markdown_escape(row.label)] + cells) + " |")
        parts.append("")
        parts.extend(f"{number}. {markdown_escape(note)}" for number, note in enumerate(table.notes, start=1))
        parts.append("")
    return "\n".join(parts)


CSV_COLUMNS = ["table", "block", "method", "source", "section", "metric", "mean", "ci_low", "ci_high", "n",
               "n_outputs", "n_outputs_total", "bold", "unequal", "note"]


def render_csv(tables: list[Table]) -> str:
    records = []
    for table in tables:
        for block in table.blocks:
            for row in block.rows:
                for (section, metric), cell in zip(
                        [(section, metric) for section, metrics in table.sections for metric in metrics], row.cells):
                    records.append({"table": table.title, "block": block.label, "method": row.method,
                                    "source": row.source, "section": section, "metric": metric,
                                    "mean": cell.mean, "ci_low": cell.ci_low, "ci_high": cell.ci_high,
                                    "n": cell.n, "n_outputs": cell.n_outputs,
                                    "n_outputs_total": cell.n_outputs_total, "bold": cell.bold,
                                    "unequal": cell.unequal,
                                    "note": table.notes[cell.note - 1] if cell.note else ""})
    return pd.DataFrame(records, columns=CSV_COLUMNS).to_csv(index=False, lineterminator="\n")


def render_tables(tables: list[Table], fmt: str) -> str:
    """Every output format from the same ``Table`` records."""
    if fmt == "markdown":
        return render_markdown(tables)
    if fmt == "csv":
        return render_csv(tables)
    if fmt == "latex":
        return render_latex(tables)
    raise BadInputError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
