"""The CSV beside a results parquet: the same rows, with the long texts that repeat on every row kept once.

Every row of a results table carries its metric spec (JSON, about 1 kB), its run's provenance (JSON) and the
manifest's sha256, the same for every row of a method (and metric). The parquet keeps them on every row
(dictionary-encoded, they cost nothing there); the CSV would be tens of MB. So the CSV leaves those columns
out and ``<name>.meta.json`` beside it holds each once, keyed by method (and metric), with the CSV's sha256
so that a sidecar is never joined to another CSV. So is a long reason shared by all rows of a (method,
metric, status) (a missing weight's, with every place looked at): the CSV's cell then points to the sidecar.
``restore_columns`` puts everything back when the CSV is read.
A CSV that still holds the columns (written before, or a table whose method shares several specs) needs no
sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

SIDECAR_SUFFIX = ".meta.json"
FORMAT = "fsmi results CSV sidecar 1"
PER_METHOD = ("run_provenance", "manifest_sha256")
PER_METRIC = ("metric_spec",)
LONG_REASON = 100  # characters; shorter reasons stay in their cells


def reason_marker(sidecar: Path) -> str:
    """What a reason cell says when its text is kept once in ``sidecar``."""
    return f"(kept once in {sidecar.name})"


def _shared_reasons(frame) -> dict:
    """{method: {metric: {status: reason}}} for the groups whose rows all share one long reason."""
    groups = frame.groupby(["method", "metric", "status"], sort=True)["reason"].agg(["nunique", "first"])
    shared: dict = {}
    for (method, metric, status), row in groups.iterrows():
        if row["nunique"] == 1 and len(row["first"]) > LONG_REASON:
            shared.setdefault(method, {}).setdefault(metric, {})[status] = row["first"]
    return shared


def sidecar_path(csv: Path) -> Path:
    """``results/x.csv`` -> ``results/x.meta.json``."""
    return Path(csv).with_suffix(SIDECAR_SUFFIX)


def _once(frame, column: str, keys: list[str]) -> dict | None:
    """{key: value} when every group of ``keys`` has one value of ``column``, else None."""
    pairs = frame[keys + [column]].drop_duplicates()
    if pairs.duplicated(keys).any():
        return None
    values: dict = {}
    for row in pairs.itertuples(index=False):
        if len(keys) == 1:
            values[row[0]] = row[1]
        else:
            values.setdefault(row[0], {})[row[1]] = row[2]
    return values


def write_results_csv(frame, csv: Path) -> Path:
    """Write ``frame`` (results rows) to ``csv`` and its sidecar, atomically; returns ``csv``."""
    import pandas as pd

    from fsmi_bench.io import atomic_write_bytes, atomic_write_text, sha256_bytes

    csv, sidecar = Path(csv), sidecar_path(csv)
    columns = {column: _once(frame, column, ["method"]) for column in PER_METHOD}
    columns.update({column: _once(frame, column, ["method", "metric"]) for column in PER_METRIC})
    if any(values is None for values in columns.values()):  # one method with several specs: keep every row's
        atomic_write_bytes(csv, frame.to_csv(index=False).encode("utf-8"))
        sidecar.unlink(missing_ok=True)
        return csv
    reasons = _shared_reasons(frame)
    slim = frame.drop(columns=list(columns))
    if reasons:
        moved = [reasons.get(method, {}).get(metric, {}).get(status) is not None
                 for method, metric, status in zip(frame["method"], frame["metric"], frame["status"])]
        slim["reason"] = slim["reason"].where(~pd.Series(moved, index=slim.index), reason_marker(sidecar))
    data = slim.to_csv(index=False).encode("utf-8")
    atomic_write_bytes(csv, data)
    atomic_write_text(sidecar, json.dumps({"format": FORMAT, "csv": csv.name, "csv_sha256": sha256_bytes(data),
                                           "note": "columns of every row of the CSV, kept once: "
                                                   "run_provenance and manifest_sha256 by method, metric_spec "
                                                   "by method and metric; reasons by method, metric and status "
                                                   f"where the CSV says {reason_marker(sidecar)!r}",
                                           "columns": columns, "reasons": reasons},
                                          indent=1, sort_keys=True) + "\n")
    return csv


def restore_columns(frame, csv: Path, data: bytes):
    """``frame`` (read from ``csv``, whose bytes are ``data``) with the columns its sidecar keeps; ``frame``
    as it is when it holds them already. Raises ``BadInputError`` when they are nowhere."""
    from fsmi_bench.errors import BadInputError
    from fsmi_bench.io import sha256_bytes

    wanted = [column for column in PER_METHOD + PER_METRIC if column not in frame.columns]
    if not wanted or not {"method", "case_id", "mask_type", "metric", "value", "status"} <= set(frame.columns):
        return frame  # nothing to restore, or no results table at all (the reader says so)
    sidecar = sidecar_path(csv)
    if not sidecar.is_file():
        raise BadInputError(f"{csv} lacks the columns {', '.join(wanted)}, kept once in {sidecar.name}, which is "
                            "not beside it; keep the two together, or read the parquet")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        columns = meta["columns"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{sidecar} is not a results sidecar: {error}") from None
    if meta.get("csv_sha256") != sha256_bytes(data):
        raise BadInputError(f"{sidecar} belongs to another version of {csv.name} (sha256 differs); score again, "
                            "or read the parquet")
    frame = frame.copy()
    try:
        for column in wanted:
            values = columns[column]
            if column in PER_METRIC:
                frame[column] = [values[method][metric] for method, metric in zip(frame["method"], frame["metric"])]
            else:
                frame[column] = [values[method] for method in frame["method"]]
        marker = reason_marker(sidecar)
        moved = frame["reason"] == marker
        if moved.any():
            reasons = meta.get("reasons") or {}
            column = "reason"
            frame.loc[moved, "reason"] = [reasons[method][metric][status] for method, metric, status in
                                          zip(frame.loc[moved, "method"], frame.loc[moved, "metric"],
                                              frame.loc[moved, "status"])]
    except (KeyError, TypeError) as error:
        raise BadInputError(f"{sidecar} has no {column} for {error}; it does not describe {csv.name}") from None
    return frame
