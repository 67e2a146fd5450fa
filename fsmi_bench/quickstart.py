"""``fsmi quickstart``: the whole chain on the embedded data, with the methods that need no weights.

build -> run (identity, copy-paste, inpaint) -> score -> report -> gallery, then a short summary
(``QuickstartResult.summary``: where everything is, and Table 1's first lines). Every stage is the same plain
function its own command calls, and every stage resumes: a second call reuses the benchmark, skips
finished outputs, re-scores only what is new, and keeps the report when its inputs and code are unchanged
(``REPORT_STAMP``). The benchmark's files are hashed once for the whole chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fsmi_bench.report.tables import REFERENCE_FLOORS

WEIGHTLESS_METHODS = REFERENCE_FLOORS  # the reference floors need no weights


@dataclass(frozen=True)
class QuickstartConfig:
    out: Path
    methods: tuple[str, ...] = WEIGHTLESS_METHODS
    protocol: str = "paper"
    metrics: tuple[str, ...] | None = None  # None: every metric of the protocol
    single: int = 80
    multi: int = 125
    seed: int = 0
    size: int = 512
    leaderboard: Path | None = None  # also write this leaderboard table
    progress: bool = True  # progress bars (the CLI turns them on only when stderr is a terminal)
    gallery: bool = True  # also write the HTML gallery (out/gallery/index.html)
    command: str = "fsmi_bench.quickstart.quickstart (Python)"  # recorded in the leaderboard's header


@dataclass(frozen=True)
class QuickstartResult:
    bench: Path
    results: tuple[Path, ...]
    report: Path
    report_text: str
    plots: tuple[Path, ...] = ()
    gallery: Path | None = None  # the gallery's index.html
    messages: tuple[str, ...] = ()  # what was not written, and why

    @property
    def summary(self) -> str:
        """Where the report, plots, gallery and results are, then Table 1's first lines."""
        out = self.report.parent
        lines = [f"done: everything is in {out}",
                 f"  report   {self.report} (Markdown; LaTeX: fsmi report {out}/results/*.parquet --latex)",
                 f"  plots    {out / 'plots'} ({len(self.plots)} PNG)"]
        if self.gallery is not None:
            lines.append(f"  gallery  {self.gallery} (open it in a browser; works offline)")
        lines.append(f"  results  {', '.join(str(path) for path in self.results)}")
        lines += [f"  note: {message}" for message in self.messages]
        table = [line for line in self.report_text.split("\n\n### ")[0].splitlines() if line.startswith(("###", "|"))]
        if table:
            lines += ["", *table[:SUMMARY_TABLE_LINES]]
            if len(table) > SUMMARY_TABLE_LINES:
                lines.append(f"... the rest in {self.report}")
        return "\n".join(lines)


SUMMARY_TABLE_LINES = 12


def _say(message: str) -> None:
    import click

    click.echo(message, err=True)


def _existing_benchmark(bench: Path, config: QuickstartConfig) -> bool:
    """True when ``bench`` holds a build with the asked-for size and case counts (files verified)."""
    from collections import Counter

    from fsmi_bench.benchmark.manifest import load_benchmark

    if not (bench / "manifest.jsonl").is_file():
        return False
    benchmark = load_benchmark(bench, verify=True)
    kinds = Counter(row.kind for row in benchmark.rows if row.mask_type == "full")
    sizes = {max(row.width, row.height) for row in benchmark.rows}
    return kinds == Counter({"single": config.single, "multi": config.multi}) - Counter() and sizes == {config.size}


def quickstart(config: QuickstartConfig) -> QuickstartResult:
    from fsmi_bench.benchmark.manifest import verify_each_file_once

    with verify_each_file_once():
        return _quickstart(config)


# The report's inputs (results files, the runs' costs, options, fsmi's code) and outputs, beside it: a rerun
# with all of them unchanged keeps the report instead of aggregating again.
REPORT_STAMP = ".quickstart-report.json"


def _sha256(path: Path) -> str | None:
    from fsmi_bench.io import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def _code_digest() -> str:
    """sha256 of fsmi_bench's own files (code and data): a changed report module makes a new report."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _report_key(report_config) -> str:
    from fsmi_bench.report.cost import read_costs

    inputs = [[str(path), _sha256(Path(path))] for path in report_config.results]
    # The runs' costs as the report reads them (a rerun with nothing to do leaves them as they were).
    costs = [asdict(cost) for cost in read_costs(report_config.runs)] if report_config.runs else []
    return hashlib.sha256(json.dumps([inputs, costs, asdict(report_config), _code_digest()], default=str)
                          .encode()).hexdigest()


def _kept_report(stamp_path: Path, key: str):
    """(report text, files, messages) of the stamped report if its key and every file are unchanged."""
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        files = {Path(path): sha for path, sha in stamp["files"].items()}
        if stamp["key"] != key or any(_sha256(path) != sha for path, sha in files.items()):
            return None
        return Path(stamp["report"]).read_text(encoding="utf-8"), tuple(files), tuple(stamp["messages"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _make_report(report_config, stamp_path: Path):
    """(text, files, messages) of the report: the stamped one when nothing changed, else made now."""
    from fsmi_bench.io import atomic_write_text
    from fsmi_bench.report.make_report import make_report

    key = _report_key(report_config)
    kept = _kept_report(stamp_path, key)
    if kept is not None:
        return kept
    stamp_path.unlink(missing_ok=True)
    report = make_report(report_config)
    atomic_write_text(stamp_path, json.dumps({"key": key, "report": report_config.out, "messages": report.messages,
                                              "files": {str(path): _sha256(path) for path in report.files}}))
    return report.text, report.files, report.messages


def _quickstart(config: QuickstartConfig) -> QuickstartResult:
    from fsmi_bench.benchmark.builder import BuildConfig, build_benchmark
    from fsmi_bench.errors import BadInputError
    from fsmi_bench.report.make_report import ReportConfig
    from fsmi_bench.run.engine import RunConfig, run_method
    from fsmi_bench.run.method import choose_method
    from fsmi_bench.scoring.score_run import ScoreConfig, score_run

    # An unknown name fails before minutes of building. Folders and files are named by each method's name (a
    # target's class name), never by the target: "/abs/m.py:Mine" writes runs/Mine, not beside m.py.
    names = [choose_method(method).name for method in config.methods]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadInputError(f"--methods names {', '.join(twice)} more than once (a target is named by its class's "
                            "`name`, else the class name); give each method once")
    out = Path(config.out)
    bench = out / "bench"
    steps = 5 if config.gallery else 4
    if _existing_benchmark(bench, config):
        _say(f"[1/{steps}] benchmark: reusing {bench}")
    else:
        if bench.exists() and any(bench.iterdir()):
            raise BadInputError(f"{bench} holds another build; remove it or choose another --out")
        _say(f"[1/{steps}] benchmark: building {config.single} single + {config.multi} multi-image cases in {bench}")
        build_benchmark(BuildConfig(out=bench, single=config.single, multi=config.multi, seed=config.seed,
                                    size=config.size), progress=config.progress)
    results = []
    for number, (method, name) in enumerate(zip(config.methods, names), start=1):
        run_dir = out / "runs" / name
        _say(f"[2/{steps}] run {number}/{len(config.methods)}: {name} -> {run_dir}")
        run_method(RunConfig(method=method, bench=bench, out=run_dir, seed=config.seed, progress=config.progress))
        result_path = out / "results" / f"{name}.parquet"
        _say(f"[3/{steps}] score {name} ({config.protocol} protocol) -> {result_path}")
        score_run(ScoreConfig(bench=bench, run=run_dir, protocol=config.protocol, metrics=config.metrics,
                              out=result_path, progress=config.progress))
        results.append(result_path)
    report_path = out / "report.md"
    _say(f"[4/{steps}] report -> {report_path} (plots in {out / 'plots'})")
    runs = tuple(str(out / "runs" / name) for name in names)  # their run.json: each method's cost
    report_text, report_files, messages = _make_report(ReportConfig(
        results=tuple(map(str, results)), fmt="markdown", out=str(report_path), plots_dir=str(out / "plots"),
        runs=runs, leaderboard=str(config.leaderboard) if config.leaderboard else None, command=config.command),
        out / REPORT_STAMP)
    gallery = None
    if config.gallery:
        from fsmi_bench.report.gallery import GalleryConfig, build_gallery

        _say(f"[5/{steps}] gallery -> {out / 'gallery' / 'index.html'}")
        gallery = build_gallery(GalleryConfig(runs=tuple(out / "runs" / name for name in names),
                                              bench=bench, out=out / "gallery", results=tuple(results),
                                              progress=config.progress)).index
    plots = tuple(path for path in report_files if path.suffix == ".png")
    return QuickstartResult(bench=bench, results=tuple(results), report=report_path, report_text=report_text,
                            plots=plots, gallery=gallery, messages=messages)
