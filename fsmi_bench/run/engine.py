"""The run engine: runs one method over a benchmark, resumably, deterministically, in shards.

What it guarantees (the method only edits one case; everything else is here):
- Order: cases in sorted case-id order, each case's mask conditions in the manifest's order.
- Seeds: each edit's seed is ``derive_seed(run seed, case seed, mask type)``, so an output does not
  depend on which other cases ran, on shards, or on resuming.
- Resume: an output that exists and decodes as an RGB image of the scene's size is kept; anything else
  (missing, truncated, earlier failure) is done again. Outputs are written atomically, so a run killed at
  any moment and started again with the same command ends with the files of an uninterrupted run.
- One folder, one run: a folder holding a run with another method, config, seed or benchmark is refused.
- Failures: an exception from one edit is recorded in the failures file and the run goes on; missing
  weights stop the run (every case would fail the same way).
- Sizes: an output of another size is resized to the scene's (width, height) (``SIZE_MAPPING_RULE``);
  run.json's ``size_mapping.resized`` lists the original size of each output that was resized.
- Shards: ``--shard i/n``, or one process per rank under ``accelerate launch`` (RANK / WORLD_SIZE), takes
  the cases whose position in the benchmark's sorted case list is i modulo n.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fsmi_bench
from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.schema import KINDS
from fsmi_bench.io import (atomic_write_bytes, atomic_write_text, ensure_writable_dir, load_mask, load_rgb,
                          read_jsonl, write_jsonl)
from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow, load_benchmark
from fsmi_bench.run.method import METHODS, EditRequest, Method
from fsmi_bench.provenance import git_commit, package_versions, weights_provenance
from fsmi_bench.run.folder import (Shard, failures_file, output_path, read_run_file, run_file, run_files,
                               run_identity)

SEED_RULE = "int(sha256(f'{run_seed}:{case_seed}:{mask_type}')[:8], 16) & 0x7fffffff"
SIZE_MAPPING_RULE = ("outputs whose size differs from the scene's are resized to the scene's (width, height) "
                     "with PIL bicubic resampling, the whole image stretched (aspect ratio not kept), since "
                     "methods work on a resized copy of the whole scene")


@dataclass(frozen=True)
class RunConfig:
    """What ``fsmi run`` was asked to do.

    mask_types: the mask conditions to run (None = all in the manifest).
    kinds: "single" and/or "multi".
    limit: run only the first ``limit`` cases (sorted case ids, after the kinds filter), None = all.
    shard: this process's share; None = everything, or the accelerate rank when launched with several.
    method_config: the method's options (from ``--config`` and ``--weights``), recorded in run.json.
    """

    method: str
    bench: Path
    out: Path
    mask_types: tuple[str, ...] | None = None
    kinds: tuple[str, ...] = KINDS
    limit: int | None = None
    shard: Shard | None = None
    device: str = "cpu"
    seed: int = 0
    method_config: dict = field(default_factory=dict)
    progress: bool = True


@dataclass(frozen=True)
class RunSummary:
    """Counts of one invocation: written now, skipped (a valid output was there), failed."""

    out: Path
    shard: Shard | None
    selected: int
    written: int
    skipped: int
    failed: int
    elapsed_s: float


def derive_seed(run_seed: int, case_seed: int, mask_type: str) -> int:
    """The seed of one edit, in [0, 2**31): depends only on the run seed, the case seed and the mask type."""
    digest = hashlib.sha256(f"{run_seed}:{case_seed}:{mask_type}".encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def map_to_scene_size(output, width: int, height: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A method's output as RGB uint8 (height, width, 3), and its original (width, height) if it was resized.

    Accepts RGB uint8 arrays, grayscale uint8 (repeated to RGB), RGBA uint8 (alpha dropped) and PIL
    images. Anything else (floats, wrong rank) is refused: silently rescaling floats would hide a bug.
    """
    from PIL import Image

    if isinstance(output, Image.Image):
        output = np.asarray(output.convert("RGB"))
    if not isinstance(output, np.ndarray):
        raise BadInputError(f"bad output: expected an RGB uint8 array, got {type(output).__name__}")
    if output.dtype != np.uint8:
        raise BadInputError(f"bad output: expected dtype uint8, got {output.dtype}")
    if output.ndim == 2:
        output = np.repeat(output[..., None], 3, axis=2)
    elif output.ndim == 3 and output.shape[2] == 4:
        output = output[..., :3]
    if output.ndim != 3 or output.shape[2] != 3 or output.shape[0] == 0 or output.shape[1] == 0:
        raise BadInputError(f"bad output: expected shape (H, W, 3), got {output.shape}")
    if output.shape[:2] == (height, width):
        return np.ascontiguousarray(output), None
    from fsmi_bench.benchmark.compose import resize_rgb

    original = (int(output.shape[1]), int(output.shape[0]))
    return resize_rgb(np.ascontiguousarray(output), width, height), original


def load_method_config(path: str | os.PathLike) -> dict:
    """A method config file: a JSON (``.json``) or YAML (``.yaml``/``.yml``) mapping of option -> value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInputError(f"cannot read config {path}: {error.strerror or error}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise BadInputError(f"{path} is not valid YAML: {error}") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path} is not valid JSON: {error.msg} (line {error.lineno})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BadInputError(f"{path} must hold a mapping of option names to values, not {type(config).__name__}")
    return config


OUTPUT_PNG_ENCODING = ("OpenCV PNG: the 'average' filter on every row, zlib RLE strategy (lossless; byte-stable for "
                       "a given OpenCV)")


def encode_output_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 output.

    Encoding is most of the engine's own cost per edit. On 512 px photos, one fixed PNG filter ("average")
    with zlib's RLE strategy takes about a tenth of the time of ``fsmi_bench.io.save_png`` (adaptive
    filters, default deflate) for files about 2% larger; being lossless, it gives the scorer the same pixels.
    """
    import cv2

    parameters = [cv2.IMWRITE_PNG_COMPRESSION, 6, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                  cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_AVG]
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), parameters)
    if not ok:
        raise BadInputError(f"bad output: OpenCV could not encode an image of shape {image.shape} as PNG")
    return data.tobytes()


def resolve_shard(shard: Shard | None, environ=os.environ) -> Shard | None:
    """The explicit ``--shard``, else the process's rank under ``accelerate launch``/torchrun, else None."""
    world_size = int(environ.get("WORLD_SIZE", "1") or 1)
    if world_size > 1:
        if shard is not None:
            raise BadInputError("use either --shard i/n or `accelerate launch` with several processes, not both")
        return Shard(int(environ.get("RANK", "0") or 0), world_size)
    return shard


def resolve_device(device: str, environ=os.environ) -> str:
    """Under a multi-process launch, a bare "cuda" means this process's own GPU (LOCAL_RANK)."""
    if device == "cuda" and int(environ.get("WORLD_SIZE", "1") or 1) > 1 and "LOCAL_RANK" in environ:
        return f"cuda:{int(environ['LOCAL_RANK'])}"
    return device


def select_rows(benchmark: Benchmark, mask_types: tuple[str, ...] | None = None,
                kinds: tuple[str, ...] = KINDS, limit: int | None = None,
                shard: Shard | None = None) -> list[ManifestRow]:
    """The (case, mask condition) rows to run, in the engine's fixed order."""
    unknown_kinds = [kind for kind in kinds if kind not in KINDS]
    if unknown_kinds:
        raise BadInputError(f"unknown kind {unknown_kinds[0]!r} (known: {', '.join(KINDS)})")
    manifest_mask_order: dict[str, int] = {}
    for row in benchmark.rows:
        manifest_mask_order.setdefault(row.mask_type, len(manifest_mask_order))
    if mask_types is not None:
        for mask_type in mask_types:
            if mask_type not in manifest_mask_order:
                close = difflib.get_close_matches(mask_type, list(manifest_mask_order), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise BadInputError(f"mask type {mask_type!r} is not in this benchmark{hint} "
                                    f"(it has: {', '.join(manifest_mask_order)})")
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    # Positions are taken in the whole benchmark, so a shard's cases do not change with the filters.
    position = {case_id: index for index, case_id in enumerate(benchmark.case_ids())}
    kind_of = {row.case_id: row.kind for row in benchmark.rows}
    cases = [case_id for case_id in position if kind_of[case_id] in kinds]
    if limit is not None:
        cases = cases[:limit]
    if not cases:
        raise BadInputError(f"no case of kind {', '.join(kinds)} in {benchmark.root}")
    chosen = {case_id for case_id in cases if shard is None or shard.takes(position[case_id])}
    rows = [row for row in benchmark.rows
            if row.case_id in chosen and (mask_types is None or row.mask_type in mask_types)]
    rows.sort(key=lambda row: (position[row.case_id], manifest_mask_order[row.mask_type]))
    return rows


def is_valid_output(path: Path, width: int, height: int) -> bool:
    """True if ``path`` decodes completely as an RGB image of the given size."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.size != (width, height) or image.mode != "RGB":
                return False
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _json_normal(value):
    """The value as it reads back from JSON (tuples become lists), so configs compare equal after a restart."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except TypeError as error:
        raise BadInputError(f"method config must be JSON-serialisable: {error}") from None


def _check_same_run(root: Path, identity: dict) -> dict[str, dict]:
    """Refuse a folder that holds another run; return the existing run files' contents by file name."""
    existing = {}
    for _, path in run_files(root):
        info = read_run_file(path)
        theirs = run_identity(info)
        if theirs != identity:
            differences = [f"{key}: {theirs.get(key)!r} there, {identity.get(key)!r} now"
                           for key in identity if theirs.get(key) != identity.get(key)]
            raise BadInputError(f"{root} already holds another run ({'; '.join(differences)}); "
                                "use another --out folder, or delete that one to start again")
        existing[path.name] = info
    return existing


def _check_same_weights(root: Path, existing: dict[str, dict], weights: dict) -> None:
    for name, info in existing.items():
        theirs = {key: value.get("sha256") for key, value in (info.get("weights") or {}).items()}
        ours = {key: value["sha256"] for key, value in weights.items()}
        if info.get("weights") is not None and theirs != ours:
            raise BadInputError(f"{root / name} was made with other weights ({theirs} there, {ours} now); "
                                "use another --out folder")


def _instantiate(config: RunConfig) -> Method:
    method_class = METHODS.get(config.method)
    return method_class(config=dict(config.method_config), device=config.device)


def _clear_stale_temporaries(case_dir: Path) -> None:
    # A killed atomic write leaves ".<name>.<random>.tmp" beside the outputs; only this process writes
    # this case's folder (shards split by case), so they can be removed safely.
    for stale in case_dir.glob(".*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def run_method(config: RunConfig, method: Method | None = None) -> RunSummary:
    """Run ``config.method`` (or the given ``method`` instance, recorded under ``config.method``) over the
    benchmark. Raises ``FsmiError`` subclasses for problems the user must fix; per-edit exceptions are
    recorded in the failures file instead."""
    started = time.perf_counter()
    if method is None:
        METHODS.entry(config.method)  # an unknown name fails at once, with "did you mean"
    benchmark = load_benchmark(config.bench, verify=True)
    shard = resolve_shard(config.shard)
    device = resolve_device(config.device)
    rows = select_rows(benchmark, config.mask_types, tuple(config.kinds), config.limit, shard)
    root = ensure_writable_dir(config.out)
    method_config = _json_normal(config.method_config)
    identity = {"method": config.method, "method_config": method_config, "seed": int(config.seed),
                "manifest_sha256": benchmark.manifest_sha256}
    existing = _check_same_run(root, identity)
    this_run_file = run_file(root, shard)
    previous = existing.get(this_run_file.name, {})
    resized: dict[str, list[int]] = dict((previous.get("size_mapping") or {}).get("resized", {}))
    failures_path = failures_file(root, shard)
    failures: dict[tuple[str, str], str] = {}
    if failures_path.is_file():
        failures = {(row["case_id"], row["mask_type"]): row["error"] for row in read_jsonl(failures_path)}

    if method is None:
        method = _instantiate(RunConfig(**{**config.__dict__, "method_config": method_config, "device": device}))
    written = skipped = 0
    try:
        method.setup()
        weights = weights_provenance(method.weights())
        _check_same_weights(root, existing, weights)
        info = {
            **identity,
            "weights": weights,
            "package_versions": package_versions(),
            "git_commit": git_commit(),
            "fsmi_version": fsmi_bench.__version__,
            "seed_rule": SEED_RULE,
            "benchmark_dir": str(Path(config.bench).resolve()),
            "benchmark_version": benchmark.version,
            "size_mapping": {"rule": SIZE_MAPPING_RULE, "resized": resized},
            "output_encoding": OUTPUT_PNG_ENCODING,
            "shard": None if shard is None else {"index": shard.index, "count": shard.count},
            "selection": {"mask_types": None if config.mask_types is None else list(config.mask_types),
                          "kinds": list(config.kinds), "limit": config.limit},
            "device": device,
            "created_at": previous.get("created_at", _now()),
            "status": "running",
        }
        atomic_write_text(this_run_file, json.dumps(info, indent=2, sort_keys=True))

        def save_failures():
            write_jsonl(failures_path, [{"case_id": case_id, "mask_type": mask_type, "error": error}
                                        for (case_id, mask_type), error in sorted(failures.items())])

        from tqdm import tqdm

        progress = tqdm(total=len(rows), desc=f"{config.method}" + (f" shard {shard.label}" if shard else ""),
                        unit="edit", file=sys.stderr, disable=not config.progress, dynamic_ncols=True)
        case_inputs: tuple[str, np.ndarray | None, np.ndarray | None] = ("", None, None)
        for row in rows:
            key = (row.case_id, row.mask_type)
            target = output_path(root, row.case_id, row.mask_type)
            if target.is_file() and is_valid_output(target, row.width, row.height):
                skipped += 1
                if failures.pop(key, None) is not None:
                    save_failures()
                progress.update(1)
                continue
            try:
                if case_inputs[0] != row.case_id:
                    _clear_stale_temporaries(target.parent)
                    scene = load_rgb(benchmark.path(row.scene))
                    subject = load_rgb(benchmark.path(row.subject)) if row.subject else None
                    case_inputs = (row.case_id, scene, subject)
                _, scene, subject = case_inputs
                mask = load_mask(benchmark.path(row.mask))
                if mask.shape != scene.shape[:2]:
                    raise BadInputError(f"mask {row.mask} is {mask.shape[::-1]}, scene is {scene.shape[1::-1]}")
                request = EditRequest(
                    scene=scene.copy(), subject=None if subject is None else subject.copy(), mask=mask,
                    instruction=row.instruction, label=row.label,
                    seed=derive_seed(config.seed, row.seed, row.mask_type), case_id=row.case_id,
                    mask_type=row.mask_type, kind=row.kind, op=row.op, complexity=row.complexity)
                image, original_size = map_to_scene_size(method.edit(request), row.width, row.height)
                atomic_write_bytes(target, encode_output_png(image))
            except MissingWeightsError:
                raise
            except Exception as error:  # one edit's failure must not end the run
                failures[key] = f"{type(error).__name__}: {error}"
                save_failures()
            else:
                written += 1
                if original_size is not None:
                    resized[f"{row.case_id}/{row.mask_type}"] = list(original_size)
                else:
                    resized.pop(f"{row.case_id}/{row.mask_type}", None)
                if failures.pop(key, None) is not None:
                    save_failures()
            progress.update(1)
        progress.close()
        save_failures()
        selected_failed = sum(1 for row in rows if (row.case_id, row.mask_type) in failures)
        info.update(status="complete" if not selected_failed else "complete_with_failures",
                    finished_at=_now(),
                    counts={"selected": len(rows), "written": written, "skipped": skipped,
                            "failed": selected_failed})
        atomic_write_text(this_run_file, json.dumps(info, indent=2, sort_keys=True))
    finally:
        method.close()
    return RunSummary(out=root, shard=shard, selected=len(rows), written=written, skipped=skipped,
                      failed=selected_failed, elapsed_s=time.perf_counter() - started)
