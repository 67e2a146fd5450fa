"""The plain function behind ``fsmi report``: load results, aggregate once, write what was asked."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fsmi_bench.errors import BadInputError
from fsmi_bench.io import atomic_write_text
from fsmi_bench.report.stats import DEFAULT_RESAMPLES, DEFAULT_SEED


@dataclass(frozen=True)
class ReportConfig:
    """Options of ``fsmi report``. ``results``: parquet/CSV results tables (measured and/or reported rows)."""

    results: tuple  # paths (str) or DataFrames of results rows; run folders among them go to ``runs``
    fmt: str = "markdown"  # "markdown", "latex" or "csv"
    out: str | None = None  # file for the tables; None: returned (the CLI prints it)
    plots_dir: str | None = None
    leaderboard: str | None = None
    paired: tuple[str, str] | None = None
    with_paper: bool = False  # add the paper's reported rows (fsmi_bench.report.reported)
    latex_standalone: bool = False  # wrap LaTeX in a complete \documentclass{article}
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    methods: tuple[str, ...] | None = None  # measured methods to show, in this row order (None: all)
    metrics: tuple[str, ...] | None = None  # metric columns to show (None: all)
    decimals: int = 4
    all_cases: bool = False  # each method over all its own cases instead of the cases all methods share
    specs_out: str | None = None  # write every metric's full spec here (JSON)
    iou_bins: tuple[float, ...] | None = None  # inner edges of the mask-IoU bins (None: looseness.IOU_EDGES)
    coverage_bins: tuple[float, ...] | None = None  # of the coverage bins (None: looseness.COVERAGE_EDGES)
    runs: tuple = ()  # run folders whose run.json gives each method's cost (seconds per edit, peak memory)
    command: str = "fsmi_bench.report.make_report.make_report (Python)"


@dataclass(frozen=True)
class ReportResult:
    text: str  # the rendered tables (or the paired-test table)
    files: tuple[Path, ...]  # every file written
    messages: tuple[str, ...] = ()  # one line per thing not written, and why (an empty plot, say)
    tables: tuple = ()  # the ``tables.Table`` records the text was rendered from (none for a paired test)


def _single_value(cells, column: str) -> str:
    values = sorted(set(cells.loc[cells["source"] == "measured", column]) - {""})
    return ", ".join(values) if values else "reported only"


def make_report(config: ReportConfig) -> ReportResult:
    """Make the report described by ``config``; files are written atomically, nothing half-written."""
    from fsmi_bench.report.aggregate import aggregate_cells, common_cases
    from fsmi_bench.report.render import FORMATS, render_tables
    from fsmi_bench.report.results_table import load_results
    from fsmi_bench.report.stats import check_bootstrap
    from fsmi_bench.report.tables import TableOptions, build_tables
    from fsmi_bench.schema import REPORTED

    if config.fmt not in FORMATS:
        raise BadInputError(f"unknown report format {config.fmt!r}; choose one of {', '.join(FORMATS)}")
    check_bootstrap(config.resamples, config.seed, "--resamples and --seed")
    # Run folders given among the results add the table of costs; everything else is a results table.
    folders = tuple(item for item in config.results if isinstance(item, (str, Path)) and Path(item).is_dir())
    config = replace(config, results=tuple(item for item in config.results if not any(item is f for f in folders)),
                     runs=config.runs + folders)
    if not config.results:
        raise BadInputError("give at least one results table (parquet or CSV) beside the run folders")
    extra = None
    if config.with_paper:
        from fsmi_bench.report.reported import paper_reported_frame

        extra = paper_reported_frame()
    frame = load_results(config.results, extra=extra)
    files: list[Path] = []
    messages: list[str] = []
    if config.paired:
        from fsmi_bench.report.paired import paired_tests, render_paired

        method_a, method_b = config.paired
        text = render_paired(paired_tests(frame, method_a, method_b, resamples=config.resamples, seed=config.seed),
                             method_a, method_b, config.resamples, config.seed, decimals=config.decimals)
    else:
        text = None
    tables = ()
    # Leaderboards and `fsmi compare` keep every method's own cells; tables compare on shared cases.
    cells = aggregate_cells(frame, resamples=config.resamples, seed=config.seed)
    if config.all_cases:
        table_cells, coverage = cells, ()
    else:
        shared, coverage = common_cases(frame)
        table_cells = aggregate_cells(shared, resamples=config.resamples, seed=config.seed)
    iou_cells = None
    if text is None:
        from fsmi_bench.report.looseness import COVERAGE_EDGES, IOU_EDGES, check_edges, looseness_tables

        iou_edges = check_edges(config.iou_bins or IOU_EDGES, "--iou-bins")
        coverage_edges = check_edges(config.coverage_bins or COVERAGE_EDGES, "--coverage-bins")
        reported = frame[frame["status"] == REPORTED]
        reported_order = list(dict.fromkeys(zip(reported["kind"], reported["method"])))
        options = TableOptions(methods=config.methods, metrics=config.metrics, decimals=config.decimals,
                               all_cases=config.all_cases, coverage=coverage)
        tables = tuple(build_tables(table_cells, reported_order, config.resamples, config.seed, options))
        # How scores change as masks loosen, on the same (case, mask type) pairs as the tables above.
        loose, iou_cells, skipped = looseness_tables(frame if config.all_cases else shared, config.resamples,
                                                     config.seed, options, iou_edges, coverage_edges)
        tables += tuple(loose)
        messages.extend(skipped)
        if config.runs:
            from fsmi_bench.report.cost import cost_table, read_costs

            costs = cost_table(read_costs(config.runs), config.decimals, config.methods)
            tables += (costs,) if costs is not None else ()
        text = render_tables(tables, config.fmt)
        if config.fmt == "latex" and config.latex_standalone:
            from fsmi_bench.report.latex import standalone_document

            text = standalone_document(text)
    if config.out:
        atomic_write_text(config.out, text)
        files.append(Path(config.out))
    if config.plots_dir:
        from fsmi_bench.report.plots import write_plots

        written, skipped = write_plots(table_cells, config.plots_dir, methods=config.methods,
                                       metrics=config.metrics)
        files.extend(written)
        messages.extend(skipped)
        if iou_cells is not None:
            from fsmi_bench.report.plots import write_iou_plots

            files.extend(write_iou_plots(iou_cells, config.plots_dir, methods=config.methods, metrics=config.metrics))
    if config.specs_out:
        from fsmi_bench.report.notes import write_specs

        write_specs(config.specs_out, cells)
        files.append(Path(config.specs_out))
    if config.leaderboard:
        from fsmi_bench.report.leaderboard import LEADERBOARD_TABLE, Provenance, input_hashes, write_leaderboard

        provenance = Provenance(
            table=LEADERBOARD_TABLE, command=config.command,
            benchmark_version=_single_value(cells, "benchmark_version"), protocol=_single_value(cells, "protocol"),
            inputs=input_hashes(config.results), bootstrap_resamples=config.resamples, bootstrap_seed=config.seed,
            notes=(("with the paper's reported rows (fsmi_bench.report.reported)",) if config.with_paper else ()))
        write_leaderboard(config.leaderboard, cells, provenance)
        files.append(Path(config.leaderboard))
    return ReportResult(text, tuple(files), tuple(messages), tables)
