"""LaTeX for report tables, legible at a paper's text width in a plain ``\\documentclass{article}``.

Needs only ``\\usepackage{booktabs}`` (rules) and ``\\usepackage{graphicx}`` (``\\resizebox``, used only to
shrink a table that would still be wider than the text); the output's first lines say so. A table of more
than ``MAX_COLUMNS`` metrics (Table 1's 8) becomes one float per section (Foreground, Whole Image), and a
float of more than ``MAX_LINES`` printed lines is cut between blocks into several. A cell is the mean over
a second line with its interval in small type (a top-aligned inner tabular); n goes in the block's heading
row when all the block's cells share it, else into each cell. Footnotes are short: a legend, the notes
that cells point to, and the table's ``brief``; the full notes are in the Markdown report. All text is
escaped and reduced to ASCII so that pdflatex's default input encoding accepts it.
"""

from __future__ import annotations

import math
import re
import unicodedata

from fsmi_bench.report.notes import measure_label
from fsmi_bench.report.tables import Block, CellView, Table

PACKAGES = ("booktabs", "graphicx")
MAX_COLUMNS = 4  # metric columns per float; more would not be legible at a paper's text width
MAX_NOTE = 200  # characters of a cell's note in print
MAX_LINES = 36  # printed lines of a float's body, so that it and its footnotes fit a page
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': "''",
            "—": "---", "–": "--", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$",
            "≥": r"$\geq$", "≤": r"$\leq$"}
_ARROWS = {True: r"$\uparrow$", False: r"$\downarrow$"}


def escape(text: str) -> str:
    """Escape LaTeX specials; non-ASCII letters lose their accents, other symbols become '?'."""
    out = []
    text = str(text)
    for index, char in enumerate(text):
        if char == "-" and text[index + 1:index + 2] == "-":
            out.append("-{}")  # "--" would print as an en dash, "--specs" as "–specs"
        elif char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            ascii_form = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
            out.append(escape(ascii_form) if ascii_form else "?")
    return "".join(out)


def _shared_n(block: Block, columns: list[int]) -> int | None:
    """The n of every measured cell with a value in ``columns`` of ``block``, when they all share one."""
    counts = {int(row.cells[column].n) for row in block.rows for column in columns
              if not row.cells[column].reported and not math.isnan(row.cells[column].mean)
              and not math.isnan(row.cells[column].n)}
    return counts.pop() if len(counts) == 1 else None


def latex_cell(cell: CellView, decimals: int = 4, note: int = 0, show_n: bool = True) -> str:
    """The mean (bold, note mark) over its interval in small type; ``note``: its number in this float."""
    if math.isnan(cell.mean):
        text = "---"
    else:
        text = f"{cell.mean:.{decimals}f}"
        if cell.bold:
            text = rf"\textbf{{{text}}}"
    if cell.unequal:
        text += r"$^\dagger$"
    if note:
        text += rf"\textsuperscript{{{note}}}"
    if cell.reported or math.isnan(cell.mean) or math.isnan(cell.ci_low):
        return text
    below = f"[{cell.ci_low:.{decimals}f}, {cell.ci_high:.{decimals}f}]"
    if show_n:
        below += f" n={int(cell.n)}"
    if cell.outputs_partial:
        below += f" ({int(cell.n_outputs)}/{int(cell.n_outputs_total)} outputs)"
    # A top-aligned stack: the mean sits on the method's line, the interval under it.
    return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{text}\\\scriptsize {below}\end{{tabular}}"


def _legend(table: Table, rows, shared_n: bool) -> str:
    """What the cells and row marks mean, for the marks this float holds."""
    parts = ["Mean over cases; below it, its 95 % bootstrap interval over cases"
             + (" (n = cases, in the block's row)" if shared_n else ", then n = cases")]
    if any(cell.bold for row in rows for cell in row.cells):
        parts.append("bold: the best in its block among methods that are not floors")
    if any(row.label.endswith("(floor)") for row in rows):
        parts.append("(floor): a reference baseline without learning, never bold")
    if any(row.source == "reported" for row in rows):
        parts.append("(reported): the paper's printed number, on its unreleased data, without interval "
                     "(its whole-image CLIP-I and DINOv2 look swapped; kept as printed)")
    if not table.arrows:
        parts.append("differences and slopes: no arrow, see below")
    return escape("; ".join(parts) + ".")


def _float(table: Table, caption: str, sections, blocks) -> str:
    columns = [table.metrics.index(metric) for _, metrics in sections for metric in metrics]
    metric_count = len(columns)
    lines = [r"\begin{table}[htbp]", r"\centering\small", rf"\caption{{{escape(caption)}}}",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             rf"\begin{{tabular}}{{l{'r' * metric_count}}}", r"\toprule"]
    if len(sections) > 1:
        spans, rules, column = [], [], 2
        for section, metrics in sections:
            spans.append(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{escape(section)}}}")
            rules.append(rf"\cmidrule(lr){{{column}-{column + len(metrics) - 1}}}")
            column += len(metrics)
        lines += [" & " + " & ".join(spans) + r" \\", "".join(rules)]
    headers = [escape(measure_label(table.metrics[column]))
               + (f" {_ARROWS[table.higher_is_better[column]]}" if table.arrows else "") for column in columns]
    lines.append(r"Method & " + " & ".join(headers) + r" \\")
    numbers: dict[int, int] = {}  # a cell's note number in the table -> its number in this float
    all_shared = True
    for block in blocks:
        shared = _shared_n(block, columns)
        all_shared = all_shared and shared is not None
        heading = escape(block.label) + (f" (n = {shared} cases)" if shared is not None else "")
        lines += [r"\midrule", rf"\multicolumn{{{metric_count + 1}}}{{l}}{{\textit{{{heading}}}}} \\"]
        for row in block.rows:
            cells = []
            for column in columns:
                cell = row.cells[column]
                note = numbers.setdefault(cell.note, len(numbers) + 1) if cell.note else 0
                cells.append(latex_cell(cell, table.decimals, note, show_n=shared is None))
            lines.append(" & ".join([escape(row.label)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize",
              _legend(table, [row for block in blocks for row in block.rows], all_shared) + r"\par"]
    for note, number in sorted(numbers.items(), key=lambda item: item[1]):
        text = table.notes[note - 1]
        text = text if len(text) <= MAX_NOTE else text[:MAX_NOTE - 3].rstrip() + "..."
        lines.append(rf"\textsuperscript{{{number}}}{escape(text)}\par")
    brief = table.brief or " ".join(note for index, note in enumerate(table.notes, start=1) if index not in numbers)
    lines += [escape(brief) + r"\par", r"\end{minipage}", r"\end{table}"]
    return "\n".join(lines)


def _lines(block: Block) -> int:
    """Printed lines of a block: its heading, two per measured row (mean, interval), one per reported row."""
    return 1 + sum(1 if row.source == "reported" else 2 for row in block.rows)


def _pages(blocks) -> list[list[Block]]:
    """The blocks in runs of at most ``MAX_LINES`` printed lines (a block is never cut)."""
    runs: list[list[Block]] = [[]]
    for block in blocks:
        if runs[-1] and sum(map(_lines, runs[-1])) + _lines(block) > MAX_LINES:
            runs.append([])
        runs[-1].append(block)
    return runs


def render_table(table: Table) -> str:
    """One float, or one per section when the metrics would not fit the text width in one, each cut into
    several (never inside a block) when it would not fit a page's height."""
    caption = _caption(table.title)
    parts = [(caption, table.sections)] if len(table.metrics) <= MAX_COLUMNS else \
        [(f"{caption}: {section.lower()}", ((section, metrics),)) for section, metrics in table.sections]
    floats = []
    for title, sections in parts:
        pages = _pages(table.blocks)
        for number, blocks in enumerate(pages, start=1):
            part = f" ({number} of {len(pages)})" if len(pages) > 1 else ""
            floats.append(_float(table, title + part, sections, blocks))
    return "\n\n".join(floats)


def render_latex(tables: list[Table]) -> str:
    """All tables as LaTeX floats, preceded by a comment naming the packages they need."""
    header = [f"% fsmi report tables; needs in the preamble: \\usepackage{{{','.join(PACKAGES)}}}",
              "% (standard packages of any TeX distribution; compiles in a plain \\documentclass{article})"]
    return "\n".join(header) + "\n" + "\n\n".join(render_table(table) for table in tables) + "\n"


def standalone_document(body: str) -> str:
    """A complete article around ``body`` (used by the compile test and ``--latex-standalone``)."""
    return ("\\documentclass{article}\n"
            f"\\usepackage{{{','.join(PACKAGES)}}}\n"
            "\\begin{document}\n" + body + "\\end{document}\n")


def _caption(title: str) -> str:
    """The title without its "Table N: " prefix, which LaTeX's own numbering already gives."""
    return re.sub(r"^Table \d+:\s*", "", title)
