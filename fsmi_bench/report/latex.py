"""LaTeX for report tables: one ``table`` float per ``Table``, for a plain ``\\documentclass{article}``.

Needs only ``\\usepackage{booktabs}`` (rules) and ``\\usepackage{graphicx}`` (``\\resizebox``, so that the
8-metric tables fit the text width); the output's first lines say so. All text is escaped and reduced
to ASCII so that pdflatex's default input encoding accepts it.
"""

from __future__ import annotations

import math
import re
import unicodedata

from fsmi_bench.report.tables import CellView, Table, measure_label

PACKAGES = ("booktabs", "graphicx")
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': "''",
            "—": "---", "–": "--", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$"}


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


def latex_cell(cell: CellView, decimals: int = 4) -> str:
    if math.isnan(cell.mean):
        text = "---"
    else:
        text = f"{cell.mean:.{decimals}f}"
        if cell.bold:
            text = rf"\textbf{{{text}}}"
        if not cell.reported and not math.isnan(cell.ci_low):
            outputs = f" ({int(cell.n_outputs)}/{int(cell.n_outputs_total)} outputs)" if cell.outputs_partial else ""
            text += rf"\,{{\scriptsize[{cell.ci_low:.{decimals}f}, {cell.ci_high:.{decimals}f}] n={int(cell.n)}{outputs}}}"
    if cell.unequal:
        text += r"$^\dagger$"
    if cell.note:
        text += rf"\textsuperscript{{{cell.note}}}"
    return text


def render_table(table: Table) -> str:
    metric_count = len(table.metrics)
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{escape(_caption(table.title))}}}",
             r"\resizebox{\textwidth}{!}{%", rf"\begin{{tabular}}{{ll{'r' * metric_count}}}", r"\toprule"]
    spans, rules, column = [], [], 3
    for section, metrics in table.sections:
        spans.append(rf"\multicolumn{{{len(metrics)}}}{{c}}{{{escape(section)}}}")
        rules.append(rf"\cmidrule(lr){{{column}-{column + len(metrics) - 1}}}")
        column += len(metrics)
    lines.append(" & & " + " & ".join(spans) + r" \\")
    lines.append("".join(rules))
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    headers = [f"{escape(measure_label(metric))} {arrows[higher]}"
               for metric, higher in zip(table.metrics, table.higher_is_better)]
    lines.append("Mask & Method & " + " & ".join(headers) + r" \\")
    for block in table.blocks:
        lines.append(r"\midrule")
        for index, row in enumerate(block.rows):
            first = escape(block.label) if index == 0 else ""
            lines.append(" & ".join([first, escape(row.label)] + [latex_cell(cell, table.decimals) for cell in row.cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\begin{flushleft}\footnotesize"]
    lines += [rf"{number}. {escape(note)}\par" for number, note in enumerate(table.notes, start=1)]
    lines += [r"\end{flushleft}", r"\end{table}"]
    return "\n".join(lines)


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
