"""The FlexEdit paper's reported numbers (its Tables 1 and 2) as rows of the results-table format.

The transcription, ``paper_tables.csv`` beside this module, is the paper's tables, one value a row, as printed (4 decimals). Conversion:
table 1 -> kind "multi", table 2 -> kind "single"; setting full_mask -> mask_type "full",
free_shape_mask -> "free_shape", single_image -> "all" (the paper does not say which masks its
Table 2 used); section foreground -> ``fg_``, whole -> ``whole_``, background -> ``bg_``. Rows get
status, protocol and run_provenance "reported", an empty case_id, and the value exactly as printed.
In Table 1 the whole-image CLIP-I (about 0.23) and DINOv2 (about 0.83) columns look swapped relative
to the foreground ones; they are kept as printed. These numbers come from the authors' unreleased
data and hand-drawn masks: reference rows, never results reproduced here.

``leaderboards/paper_reported.csv`` is written from here by ``fsmi report --write-paper-rows FILE``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fsmi_bench.errors import BadInputError

PAPER = "Yuan et al., FlexEdit: Marrying Free-Shape Masks to VLLM for Flexible Image Editing, 2024"
REPORTED_BENCHMARK_VERSION = "paper-unreleased"
SETTING_TO_MASK_GROUP = {"full_mask": "full", "free_shape_mask": "free_shape", "single_image": "all"}
SECTION_TO_PREFIX = {"foreground": "fg", "whole": "whole", "background": "bg"}
TABLE_TO_KIND = {1: "multi", 2: "single"}
LOWER_IS_BETTER = ("lpips",)
SWAP_NOTE = ("In Table 1 the whole-image CLIP-I (about 0.23) and DINOv2 (about 0.83) columns look swapped "
             "relative to the foreground ones; kept as printed.")

# The paper's Tables 1 and 2, transcribed as printed, one value a row (packaged beside this module).
PAPER_TABLES_FILE = Path(__file__).with_name("paper_tables.csv")


def convert_reported_tables(text: str):
    """Rows of the results-table format (a pandas DataFrame) from a transcription in the format above."""
    import pandas as pd

    try:
        source = pd.read_csv(io.StringIO(text), dtype={"value": str})
    except (pd.errors.ParserError, ValueError) as error:
        raise BadInputError(f"cannot parse the reported tables: {error}") from None
    needed = ["table", "setting", "method", "section", "metric", "value"]
    if any(name not in source.columns for name in needed):
        raise BadInputError(f"reported tables need columns {', '.join(needed)}")
    rows = []
    for record in source.to_dict("records"):
        table, setting, section = int(record["table"]), record["setting"], record["section"]
        if table not in TABLE_TO_KIND or setting not in SETTING_TO_MASK_GROUP or section not in SECTION_TO_PREFIX:
            raise BadInputError(f"unknown table/setting/section in reported row {record}")
        metric = f"{SECTION_TO_PREFIX[section]}_{record['metric']}"
        spec = {"source": f"{PAPER}, Table {table}", "model": "as described in the paper", "weights_sha256": "none",
                "value_as_printed": record["value"]}
        if table == 1 and section == "whole" and record["metric"] in ("clip_i", "dinov2"):
            spec["note"] = SWAP_NOTE
        rows.append({
            "method": record["method"], "case_id": "", "kind": TABLE_TO_KIND[table], "op": "", "scenario": "",
            "complexity": "", "mask_type": SETTING_TO_MASK_GROUP[setting], "metric": metric,
            "value": float(record["value"]), "status": "reported", "reason": "",
            "higher_is_better": record["metric"] not in LOWER_IS_BETTER,
            "metric_spec": json.dumps(spec, sort_keys=True), "protocol": "reported",
            "benchmark_version": REPORTED_BENCHMARK_VERSION, "manifest_sha256": "",
            "run_provenance": json.dumps({"source": f"{PAPER}, Table {table}"}, sort_keys=True),
        })
    return pd.DataFrame(rows)


def paper_reported_frame():
    """The paper's Tables 1 and 2 as results rows with status "reported"."""
    return convert_reported_tables(PAPER_TABLES_FILE.read_text(encoding="utf-8"))


def write_paper_rows(path, command: str) -> None:
    """Write the reported rows as a results-table CSV with a provenance header (atomically)."""
    from fsmi_bench import __version__
    from fsmi_bench.io import sha256_bytes
    from fsmi_bench.report.leaderboard import git_commit, write_commented_csv

    header = ["# table: fsmi results table (rows reported by the paper, status reported)",
              f"# source: {PAPER}, Tables 1 and 2, transcribed in fsmi_bench/report/paper_tables.csv "
              f"(sha256 {sha256_bytes(PAPER_TABLES_FILE.read_bytes())})",
              f"# git_commit: {git_commit()}", f"# fsmi_version: {__version__}",
              f"# benchmark_version: {REPORTED_BENCHMARK_VERSION} (the authors' unreleased FSMI-Edit data)",
              "# protocol: reported", f"# command: {command}",
              "# note: values exactly as printed; not reproduced here; never bolded against measured rows",
              f"# note: {SWAP_NOTE}",
              "# note: the paper does not say which masks its Table 2 used; its rows are under mask_type all"]
    write_commented_csv(path, header, paper_reported_frame())
