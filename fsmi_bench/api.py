"""fsmi from Python (notebooks, scripts): each stage is one call, through the functions the commands call.

    import fsmi_bench as fsmi

    bench = fsmi.load_benchmark("fsmi-out/bench")           # fsmi build's folder, sha256-checked
    for case in bench:                                       # images as numpy arrays, loaded on first use
        case.scene, case.subject, case.gt, case.region, case.masks["circle"]
    run = fsmi.run_method(MyMethod(), bench, out="runs/mine", masks=["full", "circle"], limit=4)
    table = fsmi.score(run, bench, metrics=["bg_psnr", "fg_psnr"])   # the long results table (DataFrame)
    report = fsmi.make_report([table, "runs/copy-paste/results-paper.parquet"])
    report.frames["Table 1: ..."]                                  # each table as a DataFrame; report.text

``run_method`` is ``fsmi run`` (``fsmi_bench.run.engine.run_method``), ``score`` is ``fsmi score``
(``scoring.score_run.score_run``, writing the same parquet and CSV), ``make_report`` is ``fsmi report``
(``report.make_report.make_report``; not ``report``, the name of the package's report stage): the same files,
the same rows, the same checks and the same errors (``fsmi_bench.errors.FsmiError`` subclasses, raised rather than
printed). An argument of the wrong type is a ``BadInputError`` naming it, before any work.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fsmi_bench.errors import BadInputError
from fsmi_bench.run.method import EditRequest, Method

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow

__all__ = ["load_benchmark", "run_method", "score", "make_report", "Bench", "Case", "Run", "Report", "Method",
           "EditRequest"]


class Case:
    """One case of a benchmark: its tags and instruction, and its images, loaded on first access.

    scene, gt: RGB uint8 (H, W, 3); subject: RGB uint8 (h, w, 3) for multi-image cases, else None;
    subject_mask: bool (h, w), True = the subject's own pixels, or None; region: bool (H, W), the edit
    region (the pixels where scene and GT differ; what the metrics use); masks: mask type -> bool (H, W),
    True = the region the user marked (``full`` is the region itself).
    """

    def __init__(self, benchmark: Benchmark, rows: list[ManifestRow]):
        self._benchmark = benchmark
        self.rows = tuple(rows)
        first = rows[0]
        self.case_id, self.kind, self.op, self.scenario = first.case_id, first.kind, first.op, first.scenario
        self.complexity, self.instruction, self.label = first.complexity, first.instruction, first.label
        self.clip_text, self.seed, self.width, self.height = first.clip_text, first.seed, first.width, first.height

    def __repr__(self) -> str:
        return (f"Case({self.case_id!r}, {self.kind}, {self.op}, {self.scenario}, {self.width}x{self.height}, "
                f"{len(self.rows)} masks: {self.instruction!r})")

    @property
    def mask_types(self) -> tuple[str, ...]:
        return tuple(row.mask_type for row in self.rows)

    def _load_rgb(self, relative: str | None):
        from fsmi_bench.io import load_rgb

        return None if not relative else load_rgb(self._benchmark.path(relative))

    @cached_property
    def scene(self) -> np.ndarray:
        return self._load_rgb(self.rows[0].scene)

    @cached_property
    def gt(self) -> np.ndarray:
        return self._load_rgb(self.rows[0].gt)

    @cached_property
    def subject(self) -> np.ndarray | None:
        return self._load_rgb(self.rows[0].subject)

    @cached_property
    def subject_mask(self) -> np.ndarray | None:
        from fsmi_bench.io import load_mask

        row = self.rows[0]
        return load_mask(self._benchmark.path(row.subject_mask)) if row.subject and row.subject_mask else None

    @cached_property
    def region(self) -> np.ndarray:
        from fsmi_bench.io import load_mask

        return load_mask(self._benchmark.path(self.rows[0].region))

    @cached_property
    def masks(self) -> dict[str, np.ndarray]:
        from fsmi_bench.io import load_mask

        return {row.mask_type: load_mask(self._benchmark.path(row.mask)) for row in self.rows}

    @property
    def mask_stats(self) -> dict[str, dict[str, float]]:
        """Per mask type: its IoU with the edit region and the fraction of the region it covers."""
        return {row.mask_type: {"iou": row.mask_iou, "coverage": row.mask_coverage} for row in self.rows}

    def request(self, mask_type: str, run_seed: int = 0) -> EditRequest:
        """The ``EditRequest`` a method gets for this case and mask type in a run of seed ``run_seed``
        (``fsmi run --seed``): call ``method.edit(case.request("circle"))`` to try a method on one case."""
        from fsmi_bench.run.engine import CaseInputs, WorkItem, derive_seed, edit_request

        _text(mask_type, "mask_type")
        _whole(run_seed, "run_seed")
        rows = {row.mask_type: row for row in self.rows}
        if mask_type not in rows:
            raise BadInputError(f"case {self.case_id} has no mask type {mask_type!r} (it has: {', '.join(rows)})")
        row = rows[mask_type]
        item = WorkItem(row=row, output=Path(), seed=derive_seed(run_seed, row.seed, mask_type))
        return edit_request(item, CaseInputs.load(self._benchmark, row), self._benchmark)


class Bench:
    """A benchmark folder written by ``fsmi build``: iterate it for its cases (sorted by case id),
    index it by case id or position, ``len`` it. ``manifest``: the checked ``benchmark.manifest.Benchmark``."""

    def __init__(self, manifest: Benchmark):
        self.manifest = manifest
        self.root = manifest.root
        by_case: dict[str, list] = {}
        for row in manifest.rows:
            by_case.setdefault(row.case_id, []).append(row)
        self._cases = {case_id: Case(manifest, by_case[case_id]) for case_id in sorted(by_case)}

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def case_ids(self) -> list[str]:
        return list(self._cases)

    @property
    def mask_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row.mask_type for row in self.manifest.rows))

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases.values())

    def __getitem__(self, key: str | int) -> Case:
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise BadInputError(f"index a benchmark by case id (str) or position (int), not {type(key).__name__}")
        if isinstance(key, int):
            return list(self._cases.values())[key]
        if key not in self._cases:
            raise KeyError(f"no case {key!r} in {self.root}")
        return self._cases[key]

    def __repr__(self) -> str:
        kinds = {kind: sum(case.kind == kind for case in self) for kind in ("single", "multi")}
        return (f"Bench({str(self.root)!r}, {self.version}, {kinds['single']} single + {kinds['multi']} multi cases, "
                f"mask types {', '.join(self.mask_types)})")

    def table(self) -> pd.DataFrame:
        """The manifest as a DataFrame: one row per (case, mask type), paths relative to ``root``."""
        import pandas as pd

        return pd.DataFrame([row.to_json() for row in self.manifest.rows])


def load_benchmark(path: str | Path, verify: bool = True) -> Bench:
    """Open a benchmark folder, checking every file's sha256 against the manifest (``verify``), as the
    commands do."""
    from fsmi_bench.benchmark.manifest import load_benchmark as load_manifest

    return Bench(load_manifest(_path(path, "path"), verify=_flag(verify, "verify")))


@dataclass(frozen=True)
class Run:
    """A run folder after ``run_method``: where it is, the name its results go under, and this call's
    counts (selected, written now, skipped as already done, failed)."""

    root: Path
    method: str
    selected: int
    written: int
    skipped: int
    failed: int
    elapsed_s: float

    @property
    def info(self) -> dict:
        """run.json (shards merged)."""
        from fsmi_bench.run.folder import load_run

        return load_run(self.root).info

    @property
    def failures(self) -> dict[tuple[str, str], str]:
        """(case_id, mask_type) -> error, for the edits that failed."""
        from fsmi_bench.run.folder import load_run

        return load_run(self.root).failures

    def output(self, case_id: str, mask_type: str) -> np.ndarray:
        """An output as RGB uint8 (H, W, 3)."""
        from fsmi_bench.io import load_rgb
        from fsmi_bench.run.folder import output_path

        return load_rgb(output_path(self.root, case_id, mask_type))


# Argument checks: each returns the value as the stage takes it, or raises one BadInputError naming the argument.
def _path(value, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes) or not str(value).strip():
        raise BadInputError(f"{what}: give a path (str or pathlib.Path), not {_shown(value)}")
    return Path(value)


def _optional_path(value, what: str) -> Path | None:
    return None if value is None else _path(value, what)


def _flag(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadInputError(f"{what}: give True or False, not {_shown(value)}")
    return value


def _whole(value, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum) or \
            (maximum is not None and value > maximum):
        bounds = f" from {minimum}" if minimum is not None else ""
        bounds += f" to {maximum}" if maximum is not None else ""
        raise BadInputError(f"{what}: give a whole number{bounds}, not {_shown(value)}")
    return value


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadInputError(f"{what}: give a non-empty str, not {_shown(value)}")
    return value


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _bench_root(bench: Bench | str | Path) -> Path:
    return bench.root if isinstance(bench, Bench) else _path(bench, "bench")


def _names(values, what: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    try:
        names = tuple(values)
    except TypeError:
        names = ()
    if not names or not all(isinstance(name, str) and name for name in names):
        raise BadInputError(f"{what}: give a list of names, e.g. {what}=[...], or None for all")
    return names


def run_method(method: Method | type | str, bench: Bench | str | Path, out: str | Path, *,
               masks=None, kinds=("single", "multi"), limit: int | None = None, shard: str | None = None,
               seed: int = 0, device: str = "cpu", config: dict | None = None, progress: bool = True) -> Run:
    """``fsmi run``: one output per (case, mask type) under ``out``, resumable, with run.json.

    method: a ``Method`` object (recorded under its class's ``name``, else the class name), a ``Method``
    subclass (made with ``config`` and ``device``), or a name or target as ``fsmi run --method`` takes it.
    masks: mask types (None = all); kinds: "single" and/or "multi"; limit: the first N cases; shard: "i/n".
    """
    from fsmi_bench.run.engine import RunConfig
    from fsmi_bench.run.engine import run_method as run_engine
    from fsmi_bench.run.folder import parse_shard

    out, seed, device = _path(out, "out"), _whole(seed, "seed"), _text(device, "device")
    limit = None if limit is None else _whole(limit, "limit", minimum=1)
    if shard is not None:
        _text(shard, "shard")
    if config is not None and not (isinstance(config, dict) and all(isinstance(key, str) for key in config)):
        raise BadInputError(f"config: give a dict of option names to values, not {_shown(config)}")
    progress = _flag(progress, "progress")
    instance = None
    if isinstance(method, type) and issubclass(method, Method):
        from fsmi_bench.run.method import call_method, method_name

        instance = call_method(method_name(method), "__init__()",
                               lambda: method(config=dict(config or {}), device=device))
    elif isinstance(method, Method):
        if config is not None:
            raise BadInputError("config= is for a method given by class or name; a Method object has its own "
                                ".config")
        instance = method
    elif not isinstance(method, str):
        raise BadInputError(f"method must be a Method object, a Method subclass or a name, not {type(method).__name__}")
    if instance is not None:
        from fsmi_bench.run.method import instance_choice

        if not isinstance(instance.config, dict):
            raise BadInputError(f"{type(instance).__name__}.config: a method's options are a dict, not "
                                f"{_shown(instance.config)}")
        name, method_config = instance_choice(instance).name, dict(instance.config)
    else:
        name, method_config = method, dict(config or {})
    run_config = RunConfig(method=name, bench=_bench_root(bench), out=out, mask_types=_names(masks, "masks"),
                           kinds=_names(kinds, "kinds") or ("single", "multi"), limit=limit,
                           shard=parse_shard(shard) if shard else None, device=device, seed=seed,
                           method_config=method_config, progress=progress)
    summary = run_engine(run_config, method=instance)
    return Run(root=summary.out, method=summary.method, selected=summary.selected, written=summary.written,
               skipped=summary.skipped, failed=summary.failed, elapsed_s=summary.elapsed_s)


def score(run: Run | str | Path, bench: Bench | str | Path, *, metrics=None, protocol: str = "paper",
          out: str | Path | None = None, weights: dict[str, str] | None = None, device: str = "cpu",
          batch_size: int = 16, strict_weights: bool = False, cache: bool = True,
          progress: bool = True) -> pd.DataFrame:
    """``fsmi score``: the run's long results table, one row per (case, mask type, metric), as a DataFrame.

    Also written, as the command writes it, to ``out`` (default ``RUN/results-PROTOCOL.parquet``, CSV
    beside it). metrics: names (None = all); weights: {weight name: local path} (names: ``fsmi doctor``).
    A metric whose weights are missing gives rows with status ``missing_weights`` and NaN values. Pairs the
    run did not select (``limit``, ``masks``, ``kinds``) get no rows; with ``progress``, one line says so.
    """
    from fsmi_bench.metrics.weights import check_weight_names
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    if weights is not None and not (isinstance(weights, dict) and all(
            isinstance(name, str) and isinstance(path, (str, os.PathLike)) for name, path in weights.items())):
        raise BadInputError(f"weights: give a dict of weight names to paths, not {_shown(weights)}")
    weights = dict(weights or {})
    check_weight_names(weights, "weights")
    if not isinstance(protocol, str) or protocol not in ("paper", "strict"):
        raise BadInputError(f"protocol {str(protocol)[:40]!r}: choose paper or strict")
    config = ScoreConfig(bench=_bench_root(bench), run=run.root if isinstance(run, Run) else _path(run, "run"),
                         protocol=protocol, metrics=_names(metrics, "metrics"),
                         batch_size=_whole(batch_size, "batch_size", minimum=1), device=_text(device, "device"),
                         out=_optional_path(out, "out"), strict_weights=_flag(strict_weights, "strict_weights"),
                         weights={name: str(Path(path).expanduser()) for name, path in weights.items()},
                         use_cache=_flag(cache, "cache"), progress=_flag(progress, "progress"))
    frame, summary = score_run(config)
    if summary.not_selected and progress:  # a --limit run: its other cases are left out, not missing
        import sys

        print(summary.not_selected, file=sys.stderr)
    return frame


@dataclass(frozen=True)
class Report:
    """What ``make_report`` made: ``text`` (the tables as Markdown, LaTeX or CSV, as ``fsmi report`` prints
    them), ``frames`` (each table as a DataFrame: one row per (block, method), one column per metric, the
    mean), ``cells`` (every cell: mean, 95 % interval, n, bold, note), ``files`` written, ``messages``."""

    text: str
    frames: dict
    cells: pd.DataFrame
    files: tuple[Path, ...]
    messages: tuple[str, ...]

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:  # notebooks show the tables
        return self.text if self.text.lstrip().startswith(("#", "|", "**")) else f"```\n{self.text}\n```"


def _table_frame(table) -> pd.DataFrame:
    import pandas as pd

    records = [{"block": block.label, "method": row.label,
                **{metric: cell.mean for metric, cell in zip(table.metrics, row.cells)}}
               for block in table.blocks for row in block.rows]
    frame = pd.DataFrame.from_records(records, columns=["block", "method", *table.metrics])
    return frame.set_index(["block", "method"])


def make_report(tables, *, out: str | Path | None = None, fmt: str = "markdown", with_paper: bool = False,
           methods=None, metrics=None, decimals: int = 4, all_cases: bool = False, plots: str | Path | None = None,
           specs: str | Path | None = None, resamples: int = 1000, seed: int = 0) -> Report:
    """``fsmi report``: the paper's tables (mean [95 % bootstrap interval] n) from results tables.

    tables: DataFrames from ``score`` and/or paths of results files (parquet or CSV), or one of them.
    out: also write the text there; plots: a folder for one PNG per metric; specs: the metric specs (JSON).
    """
    import pandas as pd

    from fsmi_bench.report.make_report import ReportConfig
    from fsmi_bench.report.make_report import make_report as make_report_files
    from fsmi_bench.report.render import render_csv

    if isinstance(tables, (pd.DataFrame, str, os.PathLike)):
        tables = [tables]
    if not isinstance(tables, (list, tuple)) or not all(
            isinstance(table, pd.DataFrame) or (isinstance(table, (str, os.PathLike)) and str(table).strip())
            for table in tables):
        raise BadInputError(f"tables: give a DataFrame or a path of results, or a list of them, not {_shown(tables)}")
    results = tuple(table if isinstance(table, pd.DataFrame) else str(table) for table in tables)
    out, plots, specs = _optional_path(out, "out"), _optional_path(plots, "plots"), _optional_path(specs, "specs")
    for what, path in (("out", out), ("specs", specs)):
        if path is not None and path.is_dir():
            raise BadInputError(f"{what}: {path} is a folder; give the file to write")
    config = ReportConfig(results=results, fmt=_text(fmt, "fmt"), out=str(out) if out else None,
                          plots_dir=str(plots) if plots else None, with_paper=_flag(with_paper, "with_paper"),
                          resamples=resamples, seed=seed, methods=_names(methods, "methods"),
                          metrics=_names(metrics, "metrics"), decimals=_whole(decimals, "decimals", 0, 10),
                          all_cases=_flag(all_cases, "all_cases"), specs_out=str(specs) if specs else None,
                          command="fsmi_bench.api.report (Python)")
    result = make_report_files(config)
    cells = pd.read_csv(io.StringIO(render_csv(list(result.tables))), keep_default_na=False,
                        na_values={name: ["", "nan"] for name in ("mean", "ci_low", "ci_high", "n")})
    return Report(text=result.text, frames={table.title: _table_frame(table) for table in result.tables},
                  cells=cells, files=result.files, messages=result.messages)
