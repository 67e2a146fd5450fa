"""Reading and checking the long results tables written by ``fsmi score`` (see the shared contract).

One row per (method, case_id, mask_type, metric). Rows with ``status == "reported"`` are the paper's
published numbers (``fsmi_bench.report.reported``): their ``mask_type`` is a mask *group* ("full",
"free_shape" or "all"), their ``case_id`` is empty, and they carry no per-case values.

Files may be parquet or CSV; CSV files may start with ``#`` provenance lines (leaderboards and
``paper_reported.csv`` do), which are skipped. A CSV written by ``fsmi score`` keeps its metric specs, run
provenance and manifest sha256 once, in a sidecar (``scoring.results_csv``), restored here.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fsmi_bench.errors import BadInputError
from fsmi_bench.schema import (
    OPTIONAL_RESULT_COLUMNS,
    REPORTED,
    RESULT_COLUMNS,
    RESULT_FLOAT_COLUMNS,
    RESULT_STRING_COLUMNS,
    STATUSES,
)

REQUIRED_COLUMNS = tuple(name for name in RESULT_COLUMNS if name not in OPTIONAL_RESULT_COLUMNS)
PARQUET_MAGIC = b"PAR1"
# A metric spec is a flat record of a few keys (model, sizes, rules); deeper nesting is not one.
MAX_SPEC_DEPTH = 32


def _depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
    return depth - 1


def check_metric_spec(text: str, source: str) -> None:
    """A results row's ``metric_spec``: text, or JSON objects joined by " | " (a cell over several specs), each at
    most ``MAX_SPEC_DEPTH`` deep, its ``fsmi_choices`` (if any) mapping rule names to text. Anything else that
    parses as JSON (a list, a number, a deep nest) is one ``BadInputError``: the tables read these keys."""
    for part in text.split(" | ") if text else ():
        try:
            parsed = json.loads(part)
        except RecursionError:
            raise BadInputError(f"{source}: a metric_spec is nested too deeply ({part[:40]!r}...)") from None
        except ValueError:
            continue  # plain text: shown as it is
        if not isinstance(parsed, dict):
            kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(parsed), "number")
            raise BadInputError(f"{source}: a metric_spec holds a JSON {kind} ({part[:60]!r}), not a spec (a JSON "
                                "object)")
        if _depth(parsed) > MAX_SPEC_DEPTH:
            raise BadInputError(f"{source}: a metric_spec is nested more than {MAX_SPEC_DEPTH} levels deep")
        choices = parsed.get("fsmi_choices")
        if choices is not None and not (isinstance(choices, dict) and all(
                isinstance(key, str) and isinstance(value, str) for key, value in choices.items())):
            raise BadInputError(f"{source}: a metric_spec's fsmi_choices must map rule names to text, not "
                                f"{json.dumps(choices)[:60]}")


def read_commented_csv(path: str | os.PathLike) -> tuple[list[str], str]:
    """Split a CSV file into its leading ``#`` header lines (without the ``# ``) and the CSV body."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is not a results table (not UTF-8 text nor parquet)") from None
    header, body_start = [], 0
    lines = text.splitlines(keepends=True)
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
        body_start += 1
    return header, "".join(lines[body_start:])


def _parse_bool(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(value)


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BadInputError(f"results file not found: {path}")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == PARQUET_MAGIC:
        try:
            return pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several unrelated types for a damaged file
            raise BadInputError(f"cannot read parquet results {path}: {type(error).__name__}: {error}") from None
    if path.suffix == ".parquet":
        raise BadInputError(f"{path} is not a parquet file (corrupt or truncated)")
    _, body = read_commented_csv(path)
    if not body.strip():
        raise BadInputError(f"{path} is empty, not a results table")
    try:
        frame = pd.read_csv(io.StringIO(body), dtype={name: str for name in RESULT_STRING_COLUMNS},
                            keep_default_na=False,
                            na_values={name: ["", "nan", "NaN"] for name in RESULT_FLOAT_COLUMNS})
    except (pd.errors.ParserError, ValueError) as error:
        raise BadInputError(f"{path} is not a results table: {str(error).splitlines()[0]}") from None
    from fsmi_bench.scoring.results_csv import restore_columns

    return restore_columns(frame, path, path.read_bytes())  # the columns `fsmi score` keeps once beside it


def normalise_results(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check the columns and types of one results frame; ``source`` names it in error messages."""
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise BadInputError(f"{source} is not a results table: missing columns {', '.join(missing)}")
    frame = frame.copy()
    for name in OPTIONAL_RESULT_COLUMNS:  # tables scored before these columns existed
        if name not in frame.columns:
            frame[name] = np.nan
    for name in RESULT_STRING_COLUMNS:
        frame[name] = frame[name].fillna("").astype(str)
    for name in RESULT_FLOAT_COLUMNS:
        try:
            frame[name] = pd.to_numeric(frame[name], errors="raise").astype("float64")
        except (ValueError, TypeError):
            raise BadInputError(f"{source}: column {name!r} holds non-numbers") from None
    try:
        frame["higher_is_better"] = frame["higher_is_better"].map(_parse_bool).astype(bool)
    except ValueError as error:
        raise BadInputError(f"{source}: column 'higher_is_better' holds {error}, not a boolean") from None
    for spec in frame["metric_spec"].unique():
        check_metric_spec(spec, source)
    unknown = sorted(set(frame["status"]) - set(STATUSES))
    if unknown:
        raise BadInputError(f"{source}: unknown status values {unknown} (known: {', '.join(STATUSES)})")
    ok_without_value = frame[(frame["status"] == "ok") & ~np.isfinite(frame["value"])]
    if len(ok_without_value):
        row = ok_without_value.iloc[0]
        raise BadInputError(f"{source}: row {row['method']}/{row['case_id']}/{row['mask_type']}/{row['metric']} "
                            "has status ok but no finite value")
    return frame


def check_consistent(frame: pd.DataFrame, origin: pd.Series | None = None) -> None:
    """Measured rows of one report must share one benchmark version and one protocol.

    Mixing versions or protocols would average numbers that do not measure the same thing.
    Reported (paper) rows are exempt: they are shown apart and never pooled with measured ones.
    """
    measured = frame[frame["status"] != REPORTED]
    for column, what in (("benchmark_version", "benchmark versions"), ("protocol", "protocols")):
        values = sorted(set(measured[column]))
        if len(values) > 1:
            where = ""
            if origin is not None:
                by_value = {value: sorted(set(origin[measured.index[measured[column] == value]]))
                            for value in values}
                where = " (" + "; ".join(f"{value}: {', '.join(files)}" for value, files in by_value.items()) + ")"
            raise BadInputError(f"results mix {what} {values}{where}; report one {column.replace('_', ' ')} "
                                "at a time")
    _check_one_method_per_name(measured, origin)
    directions = frame.groupby("metric", sort=True)["higher_is_better"].nunique()
    for metric in directions[directions > 1].index:
        rows = frame.index[frame["metric"] == metric]
        where = f" ({', '.join(sorted(set(origin[rows])))})" if origin is not None else ""
        raise BadInputError(f"metric {metric!r} is higher-is-better in some rows and lower-is-better in others"
                            f"{where}; a metric has one direction (were the tables edited?)")
    key = ["method", "kind", "case_id", "mask_type", "metric", "status"]
    duplicated = frame[frame.duplicated(key, keep=False)]
    if len(duplicated):
        row = duplicated.iloc[0]
        files = ""
        if origin is not None:
            files = " in " + ", ".join(sorted(set(origin[duplicated.index])))
        raise BadInputError(f"duplicate results row {row['method']}/{row['case_id'] or '-'}/{row['mask_type']}/"
                            f"{row['metric']}{files}; was the same table given twice?")


def _method_target(run_provenance: str) -> str | None:
    try:
        return json.loads(run_provenance).get("method_target")
    except (ValueError, AttributeError):
        return None


def _check_one_method_per_name(measured: pd.DataFrame, origin: pd.Series | None) -> None:
    """Two methods from different classes (``method_target`` in their run provenance) may not share a row
    label: their numbers would be pooled as if they were one method's."""
    pairs = measured[["method", "run_provenance"]].drop_duplicates()
    for method, group in pairs.groupby("method", sort=True):
        targets = sorted({_method_target(text) or "a method given by name" for text in group["run_provenance"]})
        if len(targets) > 1:
            where = ""
            if origin is not None:
                files = sorted(set(origin[measured.index[measured["method"] == method]]))
                where = f" in {', '.join(files)}"
            raise BadInputError(f"two methods share the name {method!r}{where} ({'; '.join(targets)}); "
                                "give one another name (`name = ...` on its class, --method-name for import-outputs)")


def load_results(paths, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Load, check and concatenate results tables (parquet or CSV files, or DataFrames of the same columns).

    ``extra`` (for instance the paper's reported rows) is appended before the consistency check.
    Raises ``BadInputError`` for a missing, corrupt or non-table file, for mixed benchmark versions or
    protocols among measured rows, and for duplicated rows.
    """
    frames, origins = [], []
    for number, path in enumerate(paths, start=1):
        if isinstance(path, pd.DataFrame):  # a table held in Python (fsmi_bench.api.report)
            name = f"results table {number} (a DataFrame)"
            frame = normalise_results(path, name)
        else:
            path = name = str(Path(path))
            frame = normalise_results(_read_frame(Path(path)), name)
        frames.append(frame)
        origins.extend([name] * len(frame))
    if extra is not None:
        frames.append(normalise_results(extra, "built-in rows"))
        origins.extend(["built-in paper rows"] * len(extra))
    if not frames:
        raise BadInputError("no results tables given")
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise BadInputError("the results tables hold no rows")
    origin = pd.Series(origins, index=frame.index)
    check_consistent(frame, origin)
    return frame
