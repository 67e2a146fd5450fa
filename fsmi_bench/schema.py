"""The project's vocabulary, defined once: case tags, the 9 mask conditions, result columns and statuses.

Every stage reads these names from here, so a benchmark, a run, a results table and a report agree on
them. Cheap to import (no third-party library).
"""

from __future__ import annotations

# A name that becomes one part of a file path (case ids, mask types): letters, digits, "_", "." and "-",
# starting with a letter or digit, so it can be neither "..", nor absolute, nor hidden. Always matched whole
# (``re.fullmatch``): "$" would let a trailing newline through.
PATH_PART_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
# A method's name as run.json and results tables record it: a registered name, a "module:Class" or
# "path/file.py:Class" target, or the name given to imported outputs. It never becomes a path; what it
# keeps out is markup and control characters (no <, >, &, |, quotes, newlines). Matched whole.
METHOD_NAME_PATTERN = r"[A-Za-z0-9./][A-Za-z0-9_.:/+ -]{0,255}"
# The rule for a method's name wherever one is chosen (the package's own, an entry point's, a class's ``name``,
# ``import-outputs --method-name``): a single path part too (quickstart writes runs/<name>), so no "/", ":",
# "..", leading dot or outer space. ``METHOD_NAME_PATTERN`` above is what older run files may still hold.
METHOD_NAME_RULE = r"[A-Za-z0-9](?:[A-Za-z0-9_.+ -]{0,126}[A-Za-z0-9_.+-])?"

# Case tags.
KINDS = ("single", "multi")
OPS = ("add", "replace", "remove")
SINGLE_OPS = OPS
MULTI_OPS = ("add", "replace")  # a subject image makes no sense for a removal
SCENARIOS = ("indoor", "outdoor")
COMPLEXITIES = {"single": ("none",), "multi": ("simple", "complex")}

# The 9 evaluation conditions of FSMI-Edit, in report order: the edit region itself plus 8 free shapes.
MASK_CONDITIONS = (
    "full",
    "circle",
    "circle_open",
    "rectangle",
    "rectangle_open",
    "triangle",
    "triangle_open",
    "irregular",
    "irregular_open",
)
FULL_MASK = MASK_CONDITIONS[0]
FREE_SHAPE_TYPES = MASK_CONDITIONS[1:]
# Training-time degradation W(m_o) of the paper (Sec. 3.3); not an evaluation condition.
TRAINING_TYPES = ("random_walk",)
# The position of a type here is part of its random stream: append new types, never reorder.
ALL_MASK_TYPES = MASK_CONDITIONS + TRAINING_TYPES

# The long results table of `fsmi score`: one row per (method, case, mask condition, metric).
# shape_iou, shape_coverage: the drawn shape's overlap with the edit region (ManifestRow.shape_overlap), which
# reports bin by; tables scored before they existed lack them (OPTIONAL_RESULT_COLUMNS).
RESULT_COLUMNS = ("method", "case_id", "kind", "op", "scenario", "complexity", "mask_type", "shape_iou",
                  "shape_coverage", "metric", "value", "status", "reason", "higher_is_better", "metric_spec",
                  "protocol", "benchmark_version", "manifest_sha256", "run_provenance")
RESULT_FLOAT_COLUMNS = ("shape_iou", "shape_coverage", "value")
OPTIONAL_RESULT_COLUMNS = ("shape_iou", "shape_coverage")
RESULT_STRING_COLUMNS = tuple(column for column in RESULT_COLUMNS
                              if column not in RESULT_FLOAT_COLUMNS + ("higher_is_better",))
# Statuses of measured rows; the paper's numbers enter results tables as rows of status REPORTED.
MEASURED_STATUSES = ("ok", "missing_output", "failed_case", "missing_weights", "bad_output")
REPORTED = "reported"
STATUSES = MEASURED_STATUSES + (REPORTED,)

# The Hugging Face `datasets` export of a benchmark (`fsmi export`, read back by the `hf:` source).
EXPORT_TEXT_COLUMNS = ("case_id", "kind", "op", "scenario", "complexity", "instruction", "label", "clip_text",
                       "benchmark_version", "source")
EXPORT_INT_COLUMNS = ("seed", "width", "height")
EXPORT_IMAGE_COLUMNS = ("scene", "subject", "gt", "region", "subject_mask")
EXPORT_MASK_COLUMNS = tuple(f"mask_{mask_type}" for mask_type in MASK_CONDITIONS)
EXPORT_JSON_COLUMNS = ("mask_params", "mask_stats", "origins")
