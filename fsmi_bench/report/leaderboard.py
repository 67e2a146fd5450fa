"""Leaderboard files: CSV of cells, one row per (method, source, kind, mask group, metric), under ``#``
provenance lines (``key: value``) that say how the table was made.

Header keys: ``table`` (what the file is), ``git_commit``, ``fsmi_version``, ``benchmark_version``,
``protocol``, ``command``, ``bootstrap`` (resamples and seed; ``fsmi compare`` re-aggregates with them),
and one ``input`` line per input file (``sha256  path``). No timestamp, so a regenerated leaderboard
only differs where a number, an input or the code changed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fsmi_bench import __version__
from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text, sha256_file
from fsmi_bench.report.aggregate import CELL_COLUMNS
from fsmi_bench.report.results_table import read_commented_csv

LEADERBOARD_TABLE = "fsmi leaderboard (cells)"
OUTPUT_COUNTS = ("n_outputs", "n_outputs_total")  # absent from older leaderboards: read as missing


def git_commit() -> str:
    """Commit of the code that runs, for the provenance header (``fsmi_bench.provenance.git_commit``,
    which run.json uses too, with "+dirty" when tracked files differ)."""
    from fsmi_bench.provenance import git_commit as checked_out_commit

    return checked_out_commit() or "unknown (no git commit)"


@dataclass(frozen=True)
class Provenance:
    """What a leaderboard file's ``#`` lines record."""

    table: str
    command: str
    benchmark_version: str
    protocol: str
    inputs: tuple[tuple[str, str], ...]  # (sha256, path)
    bootstrap_resamples: int
    bootstrap_seed: int
    notes: tuple[str, ...] = ()

    def header_lines(self) -> list[str]:
        lines = [f"table: {self.table}", f"git_commit: {git_commit()}", f"fsmi_version: {__version__}",
                 f"benchmark_version: {self.benchmark_version}", f"protocol: {self.protocol}",
                 f"command: {self.command}",
                 f"bootstrap: resamples={self.bootstrap_resamples} seed={self.bootstrap_seed}"]
        lines += [f"input: {sha256}  {path}" for sha256, path in self.inputs]
        lines += [f"note: {note}" for note in self.notes]
        return [f"# {line}" for line in lines]


def input_hashes(paths) -> tuple[tuple[str, str], ...]:
    return tuple((sha256_file(path), str(path)) for path in paths)


def write_commented_csv(path: str | Path, header_lines: list[str], frame: pd.DataFrame) -> None:
    """Atomically write ``#`` lines followed by ``frame`` as CSV (floats in shortest round-trip form)."""
    body = frame.to_csv(index=False, lineterminator="\n")
    atomic_write_text(path, "\n".join(header_lines) + "\n" + body)


def write_leaderboard(path: str | Path, cells: pd.DataFrame, provenance: Provenance) -> None:
    write_commented_csv(path, provenance.header_lines(), cells[CELL_COLUMNS])


def parse_header(lines: list[str]) -> dict:
    """``key: value`` lines to a dict; repeated keys (``input``, ``note``) collect into lists."""
    header: dict = {"input": [], "note": []}
    for line in lines:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("input", "note"):
            header[key].append(value)
        elif key:
            header[key] = value
    return header


def bootstrap_settings(header: dict) -> tuple[int, int]:
    """(resamples, seed) from a ``bootstrap: resamples=R seed=S`` header line."""
    from fsmi_bench.report.stats import check_bootstrap

    fields = dict(part.split("=", 1) for part in str(header.get("bootstrap", "")).split() if "=" in part)
    try:
        resamples, seed = int(fields["resamples"]), int(fields["seed"])
    except (KeyError, ValueError):
        raise BadInputError("leaderboard header lacks a valid 'bootstrap: resamples=R seed=S' line") from None
    return check_bootstrap(resamples, seed, "the leaderboard header's 'bootstrap' line")


def read_leaderboard(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """(header dict, cells frame) of a leaderboard written by ``write_leaderboard``."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"baseline leaderboard not found: {path}")
    try:
        lines, body = read_commented_csv(path)
    except BadInputError:
        raise BadInputError(f"{path} is not a leaderboard written by `fsmi report --leaderboard`") from None
    header = parse_header(lines)
    if header.get("table") != LEADERBOARD_TABLE:
        raise BadInputError(f"{path} is not a leaderboard written by `fsmi report --leaderboard` "
                            f"(its header says table: {header.get('table', 'nothing')!r})")
    string_columns = ["method", "source", "kind", "group", "metric", "reason", "benchmark_version",
                      "protocol", "metric_spec"]
    try:
        cells = pd.read_csv(io.StringIO(body), dtype={name: str for name in string_columns},
                            keep_default_na=False,
                            na_values={name: ["", "nan", "NaN"] for name in ("mean", "ci_low", "ci_high", "n",
                                                                            "n_cases", *OUTPUT_COUNTS)})
    except (pd.errors.ParserError, ValueError) as error:
        raise BadInputError(f"{path}: cannot parse the leaderboard body: {str(error).splitlines()[0]}") from None
    for name in OUTPUT_COUNTS:
        if name not in cells.columns:  # a leaderboard written before outputs were counted
            cells[name] = float("nan")
    missing = [name for name in CELL_COLUMNS if name not in cells.columns]
    if missing:
        raise BadInputError(f"{path}: leaderboard lacks columns {', '.join(missing)}")
    from fsmi_bench.report.aggregate import CELL_KEY

    duplicated = cells[cells.duplicated(CELL_KEY, keep=False)]
    if len(duplicated):
        row = duplicated.iloc[0]
        # Two rows for one cell would let either value "match": the file was edited or concatenated.
        raise BadInputError(f"{path}: {len(duplicated)} rows share a cell, e.g. "
                            f"{'/'.join(str(row[key]) for key in CELL_KEY)}; a leaderboard has one row per cell")
    return header, cells
