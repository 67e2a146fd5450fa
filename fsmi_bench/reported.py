"""The FlexEdit paper's reported numbers (its Tables 1 and 2) as rows of the results-table format.

The transcription below is the paper's tables, one value a row, as printed (4 decimals). Conversion:
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

from fsmi_bench.errors import BadInputError

PAPER = "Yuan et al., FlexEdit: Marrying Free-Shape Masks to VLLM for Flexible Image Editing, 2024"
REPORTED_BENCHMARK_VERSION = "paper-unreleased"
SETTING_TO_MASK_GROUP = {"full_mask": "full", "free_shape_mask": "free_shape", "single_image": "all"}
SECTION_TO_PREFIX = {"foreground": "fg", "whole": "whole", "background": "bg"}
TABLE_TO_KIND = {1: "multi", 2: "single"}
LOWER_IS_BETTER = ("lpips",)
SWAP_NOTE = ("In Table 1 the whole-image CLIP-I (about 0.23) and DINOv2 (about 0.83) columns look swapped "
             "relative to the foreground ones; kept as printed.")

# The paper's Tables 1 and 2, transcribed as printed.
PAPER_TABLES_CSV = """\
table,setting,method,section,metric,value
1,full_mask,AnyDoor,foreground,psnr,13.1316
1,full_mask,AnyDoor,foreground,clip_t,22.0478
1,full_mask,AnyDoor,foreground,clip_i,0.8959
1,full_mask,AnyDoor,foreground,dinov2,0.2485
1,full_mask,AnyDoor,whole,psnr,19.2274
1,full_mask,AnyDoor,whole,lpips,0.1055
1,full_mask,AnyDoor,whole,clip_i,0.2340
1,full_mask,AnyDoor,whole,dinov2,0.9292
1,full_mask,Largen,foreground,psnr,12.5130
1,full_mask,Largen,foreground,clip_t,20.8105
1,full_mask,Largen,foreground,clip_i,0.8332
1,full_mask,Largen,foreground,dinov2,0.2468
1,full_mask,Largen,whole,psnr,18.6747
1,full_mask,Largen,whole,lpips,0.1166
1,full_mask,Largen,whole,clip_i,0.2331
1,full_mask,Largen,whole,dinov2,0.8886
1,full_mask,InstructAny2Pix,foreground,psnr,8.6129
1,full_mask,InstructAny2Pix,foreground,clip_t,20.9438
1,full_mask,InstructAny2Pix,foreground,clip_i,0.7557
1,full_mask,InstructAny2Pix,foreground,dinov2,0.2424
1,full_mask,InstructAny2Pix,whole,psnr,10.3434
1,full_mask,InstructAny2Pix,whole,lpips,0.5231
1,full_mask,InstructAny2Pix,whole,clip_i,0.1723
1,full_mask,InstructAny2Pix,whole,dinov2,0.7100
1,full_mask,FlexEdit,foreground,psnr,13.1645
1,full_mask,FlexEdit,foreground,clip_t,24.1754
1,full_mask,FlexEdit,foreground,clip_i,0.8279
1,full_mask,FlexEdit,foreground,dinov2,0.2982
1,full_mask,FlexEdit,whole,psnr,18.0522
1,full_mask,FlexEdit,whole,lpips,0.1433
1,full_mask,FlexEdit,whole,clip_i,0.2402
1,full_mask,FlexEdit,whole,dinov2,0.8596
1,free_shape_mask,AnyDoor,foreground,psnr,11.8483
1,free_shape_mask,AnyDoor,foreground,clip_t,19.5245
1,free_shape_mask,AnyDoor,foreground,clip_i,0.7711
1,free_shape_mask,AnyDoor,foreground,dinov2,0.2451
1,free_shape_mask,AnyDoor,whole,psnr,18.4441
1,free_shape_mask,AnyDoor,whole,lpips,0.1348
1,free_shape_mask,AnyDoor,whole,clip_i,0.2280
1,free_shape_mask,AnyDoor,whole,dinov2,0.8292
1,free_shape_mask,Largen,foreground,psnr,12.1133
1,free_shape_mask,Largen,foreground,clip_t,19.1737
1,free_shape_mask,Largen,foreground,clip_i,0.7627
1,free_shape_mask,Largen,foreground,dinov2,0.2386
1,free_shape_mask,Largen,whole,psnr,18.6563
1,free_shape_mask,Largen,whole,lpips,0.1373
1,free_shape_mask,Largen,whole,clip_i,0.2266
1,free_shape_mask,Largen,whole,dinov2,0.8271
1,free_shape_mask,InstructAny2Pix,foreground,psnr,9.6056
1,free_shape_mask,InstructAny2Pix,foreground,clip_t,20.5750
1,free_shape_mask,InstructAny2Pix,foreground,clip_i,0.7582
1,free_shape_mask,InstructAny2Pix,foreground,dinov2,0.2411
1,free_shape_mask,InstructAny2Pix,whole,psnr,11.4099
1,free_shape_mask,InstructAny2Pix,whole,lpips,0.4720
1,free_shape_mask,InstructAny2Pix,whole,clip_i,0.1775
1,free_shape_mask,InstructAny2Pix,whole,dinov2,0.7151
1,free_shape_mask,FlexEdit,foreground,psnr,12.5648
1,free_shape_mask,FlexEdit,foreground,clip_t,22.4813
1,free_shape_mask,FlexEdit,foreground,clip_i,0.7795
1,free_shape_mask,FlexEdit,foreground,dinov2,0.2908
1,free_shape_mask,FlexEdit,whole,psnr,17.9068
1,free_shape_mask,FlexEdit,whole,lpips,0.1585
1,free_shape_mask,FlexEdit,whole,clip_i,0.2353
1,free_shape_mask,FlexEdit,whole,dinov2,0.8262
2,single_image,InstructPix2Pix,background,psnr,19.9414
2,single_image,InstructPix2Pix,background,ssim,0.8016
2,single_image,InstructPix2Pix,background,lpips,0.1043
2,single_image,InstructPix2Pix,foreground,clip_t,20.7010
2,single_image,InstructAny2Pix,background,psnr,15.5149
2,single_image,InstructAny2Pix,background,ssim,0.5919
2,single_image,InstructAny2Pix,background,lpips,0.2751
2,single_image,InstructAny2Pix,foreground,clip_t,20.3758
2,single_image,SmartEdit,background,psnr,21.9535
2,single_image,SmartEdit,background,ssim,0.7620
2,single_image,SmartEdit,background,lpips,0.0781
2,single_image,SmartEdit,foreground,clip_t,20.4910
2,single_image,FlexEdit,background,psnr,22.8081
2,single_image,FlexEdit,background,ssim,0.7712
2,single_image,FlexEdit,background,lpips,0.0727
2,single_image,FlexEdit,foreground,clip_t,20.7081
"""


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
    return convert_reported_tables(PAPER_TABLES_CSV)


def write_paper_rows(path, command: str) -> None:
    """Write the reported rows as a results-table CSV with a provenance header (atomically)."""
    from fsmi_bench.io import sha256_bytes
    from fsmi_bench.report.leaderboard import git_commit, write_commented_csv
    from fsmi_bench import __version__

    header = ["# table: fsmi results table (rows reported by the paper, status reported)",
              f"# source: {PAPER}, Tables 1 and 2, transcribed in fsmi_bench/reported.py "
              f"(sha256 of the transcription {sha256_bytes(PAPER_TABLES_CSV.encode('utf-8'))})",
              f"# git_commit: {git_commit()}", f"# fsmi_version: {__version__}",
              f"# benchmark_version: {REPORTED_BENCHMARK_VERSION} (the authors' unreleased FSMI-Edit data)",
              "# protocol: reported", f"# command: {command}",
              "# note: values exactly as printed; not reproduced here; never bolded against measured rows",
              f"# note: {SWAP_NOTE}",
              "# note: the paper does not say which masks its Table 2 used; its rows are under mask_type all"]
    write_commented_csv(path, header, paper_reported_frame())
