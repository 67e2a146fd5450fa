"""``fsmi build``: make the FSMI-Edit benchmark from a source.

For every case: a scene, the GT, the edit region (pixels that differ, dilated a little), a subject
image for multi-image cases, and the 9 mask conditions. Everything is drawn from one seed per case,
derived from the build seed, so a build is byte-identical given its arguments, and a case does not
change when more cases are asked for.

The build is written into a temporary folder next to the output and renamed into place at the end:
an interrupted build leaves nothing half-written under the output's name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from fsmi_bench import BENCHMARK_VERSION
from fsmi_bench.benchmark.manifest import MANIFEST_NAME, ManifestRow
from fsmi_bench.benchmark.sources.base import ObjectInstance, PreparedCase, SourceContent
from fsmi_bench.errors import BadInputError, FsmiError
from fsmi_bench.io import atomic_write_text, ensure_writable_dir, path_inside, save_png, write_jsonl
from fsmi_bench.schema import COMPLEXITIES, MULTI_OPS, SCENARIOS, SINGLE_OPS

KIND_CODES = {"single": 1, "multi": 2}


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    source: str = "mini"
    single: int = 80
    multi: int = 125
    seed: int = 0
    size: int = 512
    overwrite: bool = False
    previews: bool = True
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))


@dataclass(frozen=True, eq=False)
class BuiltCase:
    """A case before it is written: images as arrays, region as bool (True = pixels the edit changes)."""

    case_id: str
    kind: str
    op: str
    scenario: str
    complexity: str
    instruction: str
    label: str
    clip_text: str
    seed: int
    scene: np.ndarray
    gt: np.ndarray
    region: np.ndarray
    subject: np.ndarray | None
    origins: dict
    drawn_masks: dict = field(default_factory=dict)
    subject_mask: np.ndarray | None = None  # bool, True = the object's pixels in ``subject``
    placement: dict = field(default_factory=dict)  # role ("object", "replaced_object") -> Placement.record()


def case_seed(seed: int, kind: str, index: int) -> int:
    """A 31-bit seed for case ``index`` of ``kind``, independent of how many cases are built."""
    return int(np.random.SeedSequence([seed, KIND_CODES[kind], index]).generate_state(1)[0] >> 1)


def _choose(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _scene_for(content: SourceContent, scenario: str, rng: np.random.Generator):
    scenes = [scene for scene in content.scenes if scene.scenario == scenario] or content.scenes
    if not scenes:
        raise BadInputError(f"source {content.name!r} has no photos to compose cases from")
    return _choose(rng, scenes)


def _objects_away_from(content: SourceContent, photo_id: str, exclude_label: str | None = None):
    return [obj for obj in content.objects if obj.photo_id != photo_id and obj.label != exclude_label]


def composite_case(content: SourceContent, kind: str, index: int, seed: int, size: int) -> BuiltCase:
    """Case ``index`` of ``kind`` by compositing; its tags cycle so that every combination occurs."""
    from fsmi_bench.benchmark.compose import (
        REGION_DILATION_PX,
        cut_out,
        dilate,
        fits_scene,
        height_range,
        paste,
        placement_in_place_of,
        prepare_scene,
        random_placement,
        subject_image,
        subject_mask_image,
    )
    from fsmi_bench.benchmark.instructions import REMOVE_CLIP_TEXT, make_instruction

    this_seed = case_seed(seed, kind, index)
    rng = np.random.default_rng(this_seed)
    if kind == "single":
        op, complexity = SINGLE_OPS[index % 3], "none"
        scenario = SCENARIOS[(index // 3) % 2]
    else:
        op, complexity = MULTI_OPS[index % 2], COMPLEXITIES["multi"][(index // 2) % 2]
        scenario = SCENARIOS[(index // 4) % 2]
    scene_photo = _scene_for(content, scenario, rng)
    scene = prepare_scene(scene_photo.image, rng, size)

    def plausible(obj: ObjectInstance) -> bool:  # its size class fits the scene and it can be sized for it
        return fits_scene(obj.size, scene_photo.holds) and height_range(cut_out(obj), obj.size, scene.shape) is not None

    candidates = [obj for obj in _objects_away_from(content, scene_photo.photo_id) if plausible(obj)]
    if not candidates:
        raise BadInputError(f"source {content.name!r} has no object that fits photo {scene_photo.photo_id} "
                            f"(from another photo, of a size class it holds: {scene_photo.holds})")
    new_object: ObjectInstance = _choose(rng, candidates)
    old_object: ObjectInstance | None = None
    if op == "replace":
        others = [obj for obj in _objects_away_from(content, scene_photo.photo_id, exclude_label=new_object.label)
                  if plausible(obj)]
        if not others:
            raise BadInputError(f"source {content.name!r} needs objects of two classes for replace cases")
        old_object = _choose(rng, others)
    if op == "remove":
        old_object, new_object = new_object, None

    footprints = []
    before, after = scene, scene
    old_place = None
    placements = {}
    if old_object is not None:
        old_cut = cut_out(old_object, mirror=bool(rng.random() < 0.5))
        old_place = random_placement(old_cut, old_object.size, scene.shape, rng)
        before, old_footprint = paste(scene, old_cut, old_place)
        footprints.append(old_footprint)
        placements["replaced_object" if op == "replace" else "object"] = old_place.record(scene.shape)
    if new_object is not None:
        new_cut = cut_out(new_object, mirror=bool(rng.random() < 0.5))
        place = (placement_in_place_of(new_cut, new_object.size, old_place, scene.shape, rng)
                 if old_place is not None else random_placement(new_cut, new_object.size, scene.shape, rng))
        after, new_footprint = paste(scene, new_cut, place)
        footprints.append(new_footprint)
        placements["object"] = place.record(scene.shape)
    region = dilate(np.logical_or.reduce(footprints), REGION_DILATION_PX)

    subject = subject_mask = None
    if kind == "multi":
        subject = subject_image(new_object, complexity, size // 2)
        subject_mask = subject_mask_image(new_object, complexity, size // 2)
    label = (new_object or old_object).label
    instruction = make_instruction(kind, op, rng, new_object.label if new_object else None,
                                   old_object.label if old_object else None)
    origins = {"scene": f"{content.name}:{scene_photo.photo_id}"}
    if new_object is not None:
        origins["object"] = f"{content.name}:{new_object.object_id}"
    if old_object is not None:
        origins["replaced_object" if op == "replace" else "object"] = f"{content.name}:{old_object.object_id}"
    return BuiltCase(
        case_id=f"{kind}_{index + 1:04d}", kind=kind, op=op, scenario=scene_photo.scenario, complexity=complexity,
        instruction=instruction, label=label, clip_text=REMOVE_CLIP_TEXT if op == "remove" else label,
        seed=this_seed, scene=before, gt=after, region=region, subject=subject, origins=origins,
        subject_mask=subject_mask, placement=placements)


def prepared_case(case: PreparedCase, index: int, seed: int) -> BuiltCase:
    return BuiltCase(
        case_id=case.case_id, kind=case.kind, op=case.op, scenario=case.scenario, complexity=case.complexity,
        instruction=case.instruction, label=case.label, clip_text=case.clip_text,
        seed=case_seed(seed, case.kind, index), scene=case.scene, gt=case.gt, region=case.region,
        subject=case.subject, origins={"case": case.origin}, drawn_masks=dict(case.masks),
        subject_mask=case.subject_mask)


def mask_overlap(mask: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """(IoU of ``mask`` with ``region``, fraction of ``region`` that ``mask`` covers)."""
    inter = float(np.logical_and(mask, region).sum())
    union = float(np.logical_or(mask, region).sum())
    return inter / max(union, 1.0), inter / max(float(region.sum()), 1.0)


def case_masks(case: BuiltCase, mask_types):
    """Yield (mask_type, MaskResult) for each condition; masks the case brings are kept as drawn."""
    from fsmi_bench.benchmark.masks import MaskResult, generate_mask

    for mask_type in mask_types:
        if mask_type in case.drawn_masks:
            mask = case.drawn_masks[mask_type]
            iou, coverage = mask_overlap(mask, case.region)
            yield mask_type, MaskResult(mask=mask, params={"type": mask_type, "drawn_by": "user"},
                                        iou=iou, coverage=coverage)
        else:
            yield mask_type, generate_mask(mask_type, case.region, case.seed)


def write_case(case: BuiltCase, root: Path, source: str, mask_types) -> list[ManifestRow]:
    """Write one case's PNGs under ``root/cases/<case_id>/`` and return its manifest rows."""
    folder = f"cases/{case.case_id}"
    paths = {"scene": f"{folder}/scene.png", "gt": f"{folder}/gt.png", "region": f"{folder}/region.png"}
    hashes = {key: save_png(root / path, getattr(case, key)) for key, path in paths.items()}
    subject_path = subject_hash = None
    if case.subject is not None:
        subject_path = f"{folder}/subject.png"
        subject_hash = save_png(root / subject_path, case.subject)
    subject_mask_path = subject_mask_hash = None
    if case.subject is not None and case.subject_mask is not None:
        subject_mask_path = f"{folder}/subject_mask.png"
        subject_mask_hash = save_png(root / subject_mask_path, case.subject_mask)
    rows = []
    height, width = case.region.shape
    for mask_type, result in case_masks(case, mask_types):
        mask_path = f"{folder}/masks/{mask_type}.png"
        rows.append(ManifestRow(
            case_id=case.case_id, kind=case.kind, op=case.op, scenario=case.scenario, complexity=case.complexity,
            mask_type=mask_type, instruction=case.instruction, label=case.label, clip_text=case.clip_text,
            seed=case.seed, width=width, height=height,
            scene=paths["scene"], scene_sha256=hashes["scene"], gt=paths["gt"], gt_sha256=hashes["gt"],
            region=paths["region"], region_sha256=hashes["region"],
            mask=mask_path, mask_sha256=save_png(root / mask_path, result.mask),
            mask_iou=round(float(result.iou), 6), mask_coverage=round(float(result.coverage), 6),
            mask_params=result.params, benchmark_version=BENCHMARK_VERSION, source=source,
            origins=case.origins, subject=subject_path, subject_sha256=subject_hash,
            subject_mask=subject_mask_path, subject_mask_sha256=subject_mask_hash, placement=case.placement))
    return rows


def check_case(case: BuiltCase) -> None:
    """A case must be usable: sizes agree, the region is not empty, and covers every changed pixel."""
    if case.scene.shape != case.gt.shape or case.region.shape != case.scene.shape[:2]:
        raise BadInputError(f"case {case.case_id}: scene {case.scene.shape}, GT {case.gt.shape} and region "
                            f"{case.region.shape} differ in size")
    if not case.region.any():
        raise BadInputError(f"case {case.case_id}: the edit region is empty")
    if case.subject_mask is not None and (case.subject is None or case.subject_mask.shape != case.subject.shape[:2]
                                          or not case.subject_mask.any()):
        raise BadInputError(f"case {case.case_id}: the subject mask is empty or not the subject image's size")
    changed = np.any(case.scene != case.gt, axis=2)
    if (changed & ~case.region).any():
        raise BadInputError(f"case {case.case_id}: {int((changed & ~case.region).sum())} changed pixels lie "
                            "outside the edit region")


def case_tasks(content: SourceContent, config: BuildConfig) -> list[tuple[str, int]]:
    """The cases of a build, in order: prepared cases as given, or composited single then multi."""
    if content.cases:
        return [("prepared", index) for index in range(len(content.cases))]
    return [(kind, index) for kind, count in (("single", config.single), ("multi", config.multi))
            for index in range(count)]


# Set in the parent before the worker pool forks, so workers inherit the loaded source for free.
_WORKER_STATE: dict = {}


def _make_and_write(task: tuple[str, int]) -> list[ManifestRow]:
    from fsmi_bench.benchmark.masks import MASK_CONDITIONS

    content, config, staging = _WORKER_STATE["content"], _WORKER_STATE["config"], _WORKER_STATE["staging"]
    kind, index = task
    if kind == "prepared":
        case = prepared_case(content.cases[index], index, config.seed)
    else:
        case = composite_case(content, kind, index, config.seed, config.size)
    check_case(case)
    return write_case(case, staging, config.source, MASK_CONDITIONS)


def _run_tasks(tasks, workers: int, progress: bool):
    """Cases are independent and seeded one by one, so their order of completion does not matter;
    ``imap`` keeps the manifest in task order."""
    import multiprocessing

    from tqdm import tqdm

    bar = dict(total=len(tasks), desc="building cases", unit="case", disable=not progress)
    if workers <= 1 or len(tasks) < 4 or "fork" not in multiprocessing.get_all_start_methods():
        yield from tqdm(map(_make_and_write, tasks), **bar)
        return
    # A pool worker closes its copy of the task pipe's write end, so it exits when a killed build's pipe closes.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(_make_and_write, tasks, chunksize=2), **bar)


def dataset_card(content: SourceContent, rows: list[ManifestRow], config: BuildConfig) -> str:
    """The benchmark's README.md: what it is, counts per tag and per mask type, origins."""
    import pandas as pd

    from fsmi_bench.benchmark.compose import BASE_BAND, HEIGHT_RANGES

    frame = pd.DataFrame([{"case_id": r.case_id, "kind": r.kind, "op": r.op, "scenario": r.scenario,
                           "complexity": r.complexity, "mask_type": r.mask_type, "mask_iou": r.mask_iou,
                           "mask_coverage": r.mask_coverage} for r in rows])
    cases = frame.drop_duplicates("case_id")
    lines = [f"# FSMI-Edit benchmark ({BENCHMARK_VERSION})", "",
             f"Built by `fsmi build --source {config.source} --single {config.single} --multi {config.multi} "
             f"--seed {config.seed} --size {config.size}`: {len(cases)} cases x "
             f"{frame.mask_type.nunique()} mask conditions = {len(frame)} manifest rows.", "",
             "Files: `manifest.jsonl` (one JSON object per case and mask condition, with the sha256 of every "
             "file), `cases/<case_id>/{scene,subject,gt,region}.png` and `cases/<case_id>/masks/<type>.png`. "
             "Masks and the edit region are 8-bit PNGs, 255 = inside. Metrics use the edit region "
             "(the pixels that differ between scene and GT, dilated by 2 px), never the input mask.", "",
             "## Cases per tag", "", "| kind | op | scenario | complexity | cases |", "|---|---|---|---|---|"]
    for key, count in cases.groupby(["kind", "op", "scenario", "complexity"]).size().items():
        lines.append("| " + " | ".join(key) + f" | {int(count)} |")
    lines += ["", "## Mask conditions", "",
              "| mask type | rows | mean IoU with region | mean coverage of region |", "|---|---|---|---|"]
    stats = frame.groupby("mask_type", sort=False).agg(rows=("case_id", "size"), iou=("mask_iou", "mean"),
                                                       coverage=("mask_coverage", "mean"))
    for mask_type, stat in stats.iterrows():
        # iterrows gives each row as one float Series, so the count is cast back to an integer
        lines.append(f"| {mask_type} | {int(stat.rows)} | {stat.iou:.3f} | {stat.coverage:.3f} |")
    lines += ["", "An `_open` mask is a thin outline with a gap, so its IoU with the region is the IoU of that "
              "outline, not of the shape it encloses: small by design, and not comparable with its closed "
              "twin's.", "",
              "Free-shape masks: see `fsmi_bench/benchmark/masks/README.md` for each generator's parameter ranges "
              "and the overlap band; each row's `mask_params` records the parameters drawn.", ""]
    if not content.cases:  # composited, not prepared, cases
        lines += ["Composited cases: each object's box height is drawn from its size class's range (fractions of "
                  "the scene's height: " + ", ".join(f"{size} {low:g}-{high:g}" for size, (low, high) in
                                                      HEIGHT_RANGES.items()) +
                  f") and its base lies at {BASE_BAND[0]:g}-{BASE_BAND[1]:g} of the scene's height; a scene takes "
                  "objects up to the size class it holds. Each row's `placement` records the box and the rule.", ""]
    lines.append(content.card)
    return "\n".join(lines) + "\n"


def _prepare_output(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.parent.is_dir():
        _remove_stale_staging(out)  # first: it may put back an old benchmark that the checks below must see
    if out.exists() and not out.is_dir():
        raise BadInputError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BadInputError(f"output folder {out} is not empty; pass --overwrite to replace it")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    return ensure_writable_dir(staging)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _remove_stale_staging(out: Path) -> None:
    """Remove the temporary folders of builds of ``out`` whose process is gone (killed mid-build or mid-swap).

    A build killed between its two renames leaves no ``out`` but the old benchmark as ``.out.old-PID``:
    that one is put back, not deleted.
    """
    for leftover in sorted(out.parent.glob(f".{glob_escape(out.name)}.*-*")):
        kind, _, pid = leftover.name[len(out.name) + 2:].rpartition("-")
        if kind in ("building", "old") and pid.isdigit() and not _process_alive(int(pid)):
            leftover = path_inside(out.parent, leftover.name)
            if kind == "old" and not os.path.lexists(out):
                os.replace(leftover, out)
            else:
                shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        retired = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, retired)
        os.replace(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out)


def build_benchmark(config: BuildConfig, progress: bool = True) -> Path:
    """Build the benchmark described by ``config``; returns the output folder."""
    from fsmi_bench.benchmark.sources import load_source

    if config.size < 64:
        raise BadInputError(f"--size {config.size} is too small; use at least 64 px")
    if config.single < 0 or config.multi < 0:
        raise BadInputError("--single and --multi must not be negative")
    content = load_source(config.source)
    staging = _prepare_output(config.out, config.overwrite)
    try:
        _WORKER_STATE.update(content=content, config=config, staging=staging)
        rows: list[ManifestRow] = []
        for case_rows in _run_tasks(case_tasks(content, config), config.workers, progress):
            rows.extend(case_rows)
        if not rows:
            raise BadInputError("nothing to build: asked for 0 cases")
        write_jsonl(staging / MANIFEST_NAME, (row.to_json() for row in rows))
        atomic_write_text(staging / "README.md", dataset_card(content, rows, config))
        if config.previews:
            from fsmi_bench.benchmark.previews import write_previews

            write_previews(staging, rows)
        _swap_into_place(staging, Path(config.out))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _WORKER_STATE.clear()
    return Path(config.out)


__all__ = ["BuildConfig", "build_benchmark", "composite_case", "case_seed", "FsmiError"]
