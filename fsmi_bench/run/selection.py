"""Which edits a run makes, in which order, with which seeds: shards (``--shard`` or an ``accelerate launch``
rank), the selection options and the seed rule."""

from __future__ import annotations

import difflib
import hashlib
import os

from fsmi_bench.benchmark.manifest import Benchmark, ManifestRow
from fsmi_bench.errors import BadInputError
from fsmi_bench.run.folder import Shard
from fsmi_bench.schema import KINDS


def derive_seed(run_seed: int, case_seed: int, mask_type: str) -> int:
    """The seed of one edit, in [0, 2**31): depends only on the run seed, the case seed and the mask type."""
    digest = hashlib.sha256(f"{run_seed}:{case_seed}:{mask_type}".encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


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
