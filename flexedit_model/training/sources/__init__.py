"""The kinds of training data ``fsmi train flexedit --data KIND:PATH[=WEIGHT]`` reads, one module each.

| kind | what | examples |
| --- | --- | --- |
| ``mini`` | the embedded photos and object masks | mask task and composited edits |
| ``coco:PATH`` | a COCO instances folder, streamed (``coco.py``) | mask task (category names) and composited edits |
| ``refcoco:PATH`` | RefCOCO(+/g) ``refs(unc).p`` or gRefCOCO ``grefs(unc).json``, ``instances.json`` | mask task, expression as label |
| ``magicbrush:PATH`` | MagicBrush saved with ``save_to_disk`` | edit pairs, its masks as regions |
| ``ip2p:PATH`` | InstructPix2Pix (clip-filtered) saved with ``save_to_disk`` | edit pairs, region where they differ |
| ``fsmi:PATH`` | an FSMI folder of edit cases, read case by case | edit pairs (single and multi-image) |
| ``hf:PATH`` | segmentation rows, or an exported benchmark | as ``mini``, or edit pairs |
| ``llava:PATH`` | LLaVA's instruction-tuning JSON and its images | VQA: language loss only |

Every kind gives example ``i`` as a pure function of (source, seed, i): mixing, resuming and sharding
need nothing else. A source that has no example of the kind it gives is one line (BadInputError) at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsmi_bench.registry import Registry

KINDS = Registry("source")
_HERE = "flexedit_model.training.sources"
KINDS.register("mini", f"{_HERE}.objects:open_mini", "the embedded photos and object masks")
KINDS.register("coco", f"{_HERE}.coco:open_coco", "COCO instances folder (streamed), coco:PATH")
KINDS.register("refcoco", f"{_HERE}.refcoco:open_refcoco",
               "RefCOCO refs(unc).p / gRefCOCO grefs(unc).json with instances.json, refcoco:PATH")
KINDS.register("magicbrush", f"{_HERE}.magicbrush:open_magicbrush", "MagicBrush saved with save_to_disk")
KINDS.register("ip2p", f"{_HERE}.ip2p:open_ip2p", "InstructPix2Pix (clip-filtered) saved with save_to_disk")
KINDS.register("fsmi", f"{_HERE}.cases:open_fsmi", "FSMI folder of edit cases, fsmi:PATH")
KINDS.register("hf", f"{_HERE}.objects:open_hf", "datasets folder of segmentation rows or an exported benchmark")
KINDS.register("llava", f"{_HERE}.llava:open_llava", "LLaVA instruction-tuning JSON (VQA), llava:PATH")


@dataclass(frozen=True)
class Recipe:
    """What every kind needs of the config to make its examples."""

    resolution: int
    seed: int
    mask_task_fraction: float
    multi_fraction: float
    mask_task_mix: dict | None

    @classmethod
    def of(cls, config, settings) -> Recipe:
        mix = None if settings.mask_task_mix is None else dict(settings.mask_task_mix)
        return cls(config.resolution, settings.seed, settings.mask_task_fraction, settings.multi_fraction, mix)

    def examples_of(self, content):
        """``TrainingExamples`` of already split ``content`` (objects and scenes in memory)."""
        from flexedit_model.training.data import TrainingExamples

        return TrainingExamples(content, self.resolution, self.seed, self.mask_task_fraction, self.multi_fraction,
                                mask_task_mix=self.mask_task_mix)


def open_examples(spec: str, recipe: Recipe):
    """The examples of one source spec (``KIND`` or ``KIND:PATH``)."""
    kind, _, path = spec.partition(":")
    return KINDS.get(kind)(path, recipe)
