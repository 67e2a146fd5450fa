"""Scoring many outputs at once, doing each unavoidable model call once.

For each group of cases the scorer
1. looks every (output, metric) value up in the value cache (keyed by the output file's sha256, the
   reference's and region's sha256, the text, and the metric spec with its weights' sha256): a
   re-score computes only what is new;
2. for what is left, cuts the views each metric needs (crops, zero-filled or masked images) and
   collects the embedding requests, deduplicated by the sha256 of the exact pixels (or text) the
   model sees: an output's region crop is encoded once for CLIP-T and CLIP-I, a case's reference
   crops and caption once for all 9 mask conditions, and through the on-disk feature cache once
   across methods;
3. encodes the missing features in batches of ``batch_size`` and computes every value.

Every value is a per-image reduction, so it does not depend on batch size or case order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.io import check_image_size
from fsmi_bench.metrics import pixel
from fsmi_bench.metrics.models import ModelBank
from fsmi_bench.metrics.regions import metric_region, region_view, resize_image, resize_region
from fsmi_bench.metrics.specs import MetricSpec, metrics_for_kind
from fsmi_bench.scoring.feature_cache import FeatureCache, array_key

FEATURE_FORMAT = "fsmi-features-2"  # 2: DINOv2 through transformers' image processor


@dataclass(frozen=True)
class OutputImage:
    """One output to score: its file and the run's verdict on it.

    status: "ok", "missing_output", "failed_case" or "bad_output" (set while loading).
    """

    case_id: str
    mask_type: str
    path: Path | None
    status: str = "ok"
    reason: str = ""


@dataclass(frozen=True)
class MetricValue:
    """One cell of the results table before the run- and benchmark-wide columns are added."""

    case_id: str
    mask_type: str
    metric: str
    value: float
    status: str
    reason: str


@dataclass(frozen=True)
class _Pending:
    case_id: str
    mask_type: str
    metric: str
    value_key: str


def load_output(path: Path, width: int, height: int, resize_to_scene: bool) -> np.ndarray:
    """Read an output PNG as RGB uint8 (height, width, 3), or raise ``BadInputError`` saying why.

    Only 8-bit RGB is accepted. Grayscale, palette, RGBA and 16-bit outputs are rejected, not
    converted: each breaks the method contract (RGB uint8), and converting would hide a method that
    drops colour or returns alpha. A size other than the scene's is rejected unless the run recorded
    a size mapping, in which case the output is resized to the scene's size (PIL bicubic).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            check_image_size(*image.size, "output")
            image.load()
            mode, size = image.mode, image.size
            if mode != "RGB":
                raise BadInputError(f"output is mode {mode!r}, expected 8-bit RGB (rejected, not converted)")
            if size != (width, height):
                if not resize_to_scene:
                    raise BadInputError(f"output is {size[0]}x{size[1]}, the scene is {width}x{height}, "
                                        "and the run recorded no size mapping")
                image = image.resize((width, height), Image.BICUBIC)
            return np.asarray(image, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadInputError(f"cannot read output PNG: {error}") from None


class Scorer:
    """Computes metric values for (case, mask condition) outputs of one run.

    specs: {metric name: MetricSpec} of one protocol (all with the same ``size``).
    models: a ``ModelBank``; each metric uses the first of its spec's ``accepted_models`` whose weights
    are here, and its results rows record which. cache: a ``FeatureCache`` for features and values
    (``FeatureCache(None)`` to store nothing). batch_size: images per model call.
    """

    def __init__(self, specs: dict[str, MetricSpec], models: ModelBank, cache: FeatureCache,
                 batch_size: int = 16, strict_weights: bool = False, progress: bool = False):
        if batch_size < 1:
            raise BadInputError("--batch-size must be at least 1")
        self.specs = specs
        self.models = models
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress
        self.model_calls = 0  # images and texts actually run through a model (for the speed script)
        self._weights_id: dict[str, str] = {}
        self.model_used: dict[str, str | None] = {}  # metric -> the model that computes it
        self._missing: dict[str, str] = {}
        for spec in specs.values():
            self.model_used[spec.name] = spec.model
            if spec.model is None:
                self._weights_id[spec.name] = "none"
                continue
            status = models.choose(spec.accepted_models)
            if not status.present:
                if strict_weights:
                    raise MissingWeightsError(f"{spec.name}: {status.reason}")
                self._missing[spec.name] = status.reason
            self.model_used[spec.name] = status.model
            self._weights_id[spec.name] = status.weights_id
        # Every results row and value key carries its metric's spec: made once per metric, not per row.
        self._spec_json = {name: spec.to_json(self._weights_id[name], self.model_used[name])
                           for name, spec in specs.items()}

    def spec_json(self, metric: str) -> str:
        return self._spec_json[metric]

    # -- public -------------------------------------------------------------------------------

    def score(self, benchmark, outputs: dict[tuple[str, str], OutputImage],
              resize_to_scene: bool = False, recorded_sha256=None) -> list[MetricValue]:
        """Values for every manifest row of ``benchmark`` and every metric of its kind (in ``specs``).

        ``outputs`` maps (case_id, mask_type) to the output; a missing key means no output file.
        ``recorded_sha256(path)``: an output's sha256 as its run recorded it, None if the file changed since
        (``run.output_writer.VerifiedOutputs.sha256``); other files are hashed here.
        The cases go in chunks of about ``batch_size`` images. Each chunk's reading, cache look-ups and
        pixel metrics run on the cores in parallel (``fsmi_bench.workers``); its model calls run here, one
        chunk after another, in the chunks' order.
        """
        from tqdm import tqdm

        from fsmi_bench.workers import ordered_map

        rows_by_case: dict[str, list] = {}
        for row in benchmark.rows:
            rows_by_case.setdefault(row.case_id, []).append(row)
        chunks: list[list[list]] = [[]]
        chunk_images = 0
        for case_id in sorted(rows_by_case):
            if chunk_images >= self.batch_size:
                chunks.append([])
                chunk_images = 0
            chunks[-1].append(rows_by_case[case_id])
            chunk_images += len(rows_by_case[case_id])
        results: list[MetricValue] = []
        with tqdm(total=len(rows_by_case), desc="scoring cases", unit="case", disable=not self.progress) as bar:
            prepared = ordered_map(lambda cases: self._prepare_chunk(benchmark, cases, outputs, resize_to_scene,
                                                                     recorded_sha256),
                                   [chunk for chunk in chunks if chunk])
            for cases, found, work in prepared:
                results.extend(found)
                results.extend(work.finish())
                bar.update(len(cases))
        return results

    # -- internals ------------------------------------------------------------------------------

    def _metrics(self, kind: str) -> list[str]:
        return [name for name in metrics_for_kind(kind) if name in self.specs]

    def _prepare_chunk(self, benchmark, cases, outputs, resize_to_scene, recorded_sha256):
        """(cases, values found without a model, the chunk's ``_Work`` with its pixel metrics computed).
        Runs on a worker thread: reads files and the cache, never calls a model."""
        from fsmi_bench.io import load_mask, load_rgb, sha256_file

        results: list[MetricValue] = []
        work = _Work(self)
        for rows in cases:
            first = rows[0]
            metrics = self._metrics(first.kind)
            reference_cache: dict[str, tuple] = {}
            for row in rows:
                output = outputs.get((row.case_id, row.mask_type)) or OutputImage(
                    row.case_id, row.mask_type, None, "missing_output", "no output file")
                if output.status == "ok" and (output.path is None or not Path(output.path).is_file()):
                    output = OutputImage(row.case_id, row.mask_type, output.path, "missing_output",
                                         f"no output file {output.path}")
                if output.status != "ok":
                    results.extend(MetricValue(row.case_id, row.mask_type, m, math.nan, output.status,
                                               output.reason) for m in metrics)
                    continue
                output_sha = (recorded_sha256 and recorded_sha256(Path(output.path))) or sha256_file(output.path)
                pending: list[_Pending] = []
                for metric in metrics:
                    if metric in self._missing:
                        results.append(MetricValue(row.case_id, row.mask_type, metric, math.nan,
                                                   "missing_weights", self._missing[metric]))
                        continue
                    reference_sha = row.scene_sha256 if self.specs[metric].reference_is_scene() else row.gt_sha256
                    key = array_key("value", self.spec_json(metric), output_sha, reference_sha,
                                    row.region_sha256, row.clip_text, resize_to_scene)
                    cached = self.cache.get(key)
                    if cached is not None:
                        results.append(MetricValue(row.case_id, row.mask_type, metric, float(cached),
                                                   "ok", ""))
                    else:
                        pending.append(_Pending(row.case_id, row.mask_type, metric, key))
                # The same value asked twice (identical outputs of one case) is computed once.
                pending = [item for item in pending if not work.same_as_earlier(item)]
                if not pending:
                    continue
                try:
                    image = load_output(output.path, row.width, row.height, resize_to_scene)
                except BadInputError as error:
                    results.extend(MetricValue(row.case_id, row.mask_type, p.metric, math.nan,
                                               "bad_output", str(error)) for p in pending)
                    work.drop(pending)
                    continue
                if not reference_cache:
                    scene = load_rgb(benchmark.path(row.scene))
                    gt = load_rgb(benchmark.path(row.gt))
                    region = load_mask(benchmark.path(row.region))
                    reference_cache.update(scene=scene, gt=gt, region=region)
                for item in pending:
                    work.add(item, image, row, reference_cache)
        work.compute_pixel_batches()
        return cases, results, work


class _Work:
    """The model requests of one chunk, deduplicated by content, then computed in batches."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer
        self.values: dict[_Pending, float] = {}
        self.reasons: dict[_Pending, str] = {}  # why a value is NaN although the output is fine
        self.pixel_jobs: list[tuple[_Pending, float]] = []
        self.embed_requests: dict[str, dict[str, tuple]] = {}  # model -> key -> ("image"|"text", payload)
        self.embed_jobs: list[tuple[_Pending, str, str, str]] = []  # pending, model, key a, key b
        self.lpips_jobs: list[tuple[_Pending, str, tuple]] = []
        self.ssim_jobs: list[tuple[_Pending, np.ndarray, np.ndarray]] = []  # torchmetrics' SSIM, batched
        self._views: dict[tuple, tuple] = {}
        self._first_of_key: dict[str, _Pending] = {}
        self._copies: list[tuple[_Pending, _Pending]] = []  # (item, the earlier item with its value key)

    def same_as_earlier(self, item: _Pending) -> bool:
        """True (and ``item`` will take that value) when an item with ``item``'s value key came before."""
        first = self._first_of_key.setdefault(item.value_key, item)
        if first is not item:
            self._copies.append((item, first))
        return first is not item

    def drop(self, items: list[_Pending]) -> None:
        """Forget ``items`` (their output is unreadable) so that no later item copies their value."""
        for item in items:
            if self._first_of_key.get(item.value_key) is item:
                del self._first_of_key[item.value_key]

    def _sized(self, spec: MetricSpec, image: np.ndarray, key: tuple) -> np.ndarray:
        if spec.size is None:
            return image
        cache_key = key + (spec.size,)
        if cache_key not in self._views:
            self._views[cache_key] = (resize_region(image, spec.size) if image.dtype == bool
                                      else resize_image(image, spec.size))
        return self._views[cache_key]

    def _embed_key(self, model: str, kind: str, payload) -> str:
        weights = self.scorer.models.status(model).weights_id
        # FEATURE_FORMAT changes whenever an encoder's preprocessing or pooling changes, so that no
        # feature computed the old way is reused.
        key = array_key("feature", FEATURE_FORMAT, model, weights, kind, payload)
        self.embed_requests.setdefault(model, {})[key] = (kind, payload)
        return key

    def add(self, item: _Pending, image: np.ndarray, row, reference_cache: dict) -> None:
        spec = self.scorer.specs[item.metric]
        case = (row.case_id,)
        output = self._sized(spec, image, ("out", row.case_id, row.mask_type))
        reference = self._sized(spec, reference_cache["scene" if spec.reference_is_scene() else "gt"],
                                case + (spec.reference_is_scene(),))
        region = self._sized(spec, reference_cache["region"], case + ("region",))
        keep = metric_region(region, spec.region)
        if spec.measure in ("psnr", "ssim"):
            algorithm = spec.param("algorithm", "scikit-image")
            if spec.measure == "ssim" and algorithm == "torchmetrics":
                view = region_view(output, reference, keep, spec.region_mode)
                if view is not None and view[2] is not None:
                    raise ValueError("torchmetrics' SSIM has no masked mode")
                if view is not None:
                    self.ssim_jobs.append((item, view[0], view[1]))
                    return
                self.values[item] = math.nan
            elif spec.measure == "psnr":
                self.values[item] = pixel.psnr(output, reference, keep, spec.region_mode)
            else:
                self.values[item] = pixel.ssim(output, reference, keep, spec.region_mode, algorithm)
            self._note_nan(item, spec)
            return
        view = region_view(output, reference, keep, spec.region_mode)
        if view is None:
            self.values[item] = math.nan
            self.reasons[item] = f"the {spec.region} region is empty at this size" + self._crop_note(spec)
            return
        output_view, reference_view, pixels = view
        model = self.scorer.model_used[item.metric]
        if spec.measure == "lpips":
            self.lpips_jobs.append((item, model, view))
            return
        if pixels is not None:
            raise BadInputError(f"{spec.name}: region mode 'masked' is not defined for embedding models")
        output_key = self._embed_key(model, "image", output_view)
        if spec.measure == "clip_t":
            other_key = self._embed_key(model, "text", row.clip_text)
        else:
            other_key = self._embed_key(model, "image", reference_view)
        self.embed_jobs.append((item, model, output_key, other_key))

    def _note_nan(self, item: _Pending, spec: MetricSpec) -> None:
        if math.isnan(self.values[item]):
            self.reasons[item] = (f"the {spec.region} region is empty at this size"
                                  + (" or too small for SSIM's window" if spec.measure == "ssim" else "")
                                  + self._crop_note(spec))

    def compute_pixel_batches(self) -> None:
        """The torchmetrics SSIM values of the chunk, in one batch per image size."""
        values = pixel.ssim_torchmetrics_many([(output, reference) for _, output, reference in self.ssim_jobs])
        for (item, _, _), value in zip(self.ssim_jobs, values):
            self.values[item] = value
            self._note_nan(item, self.scorer.specs[item.metric])
        self.ssim_jobs = []

    def finish(self) -> list[MetricValue]:
        """Run the model calls (``run``), store the new values in the cache and return every value."""
        self.run()
        for item, value in self.values.items():
            if item not in self.reasons:
                # A NaN with a reason (too small, empty region) is cheap to find again: not cached.
                self.scorer.cache.put(item.value_key, np.float64(value))
        for item, first in self._copies:
            self.values[item] = self.values[first]
            if first in self.reasons:
                self.reasons[item] = self.reasons[first]
        return [MetricValue(item.case_id, item.mask_type, item.metric, value, "ok", self.reasons.get(item, ""))
                for item, value in self.values.items()]

    @staticmethod
    def _crop_note(spec: MetricSpec) -> str:
        return (", or one pixel wide or tall (SmartEdit's crop drops the box's last row and column)"
                if spec.region_mode == "smartedit_crop" else "")

    def run(self) -> None:
        from fsmi_bench.metrics.clip_metric import clip_t, cosine  # torch: imported only when something is new

        features = {}
        for model, requests in self.embed_requests.items():
            features.update(self._encode(model, requests))
        for item, model, output_key, other_key in self.embed_jobs:
            spec = self.scorer.specs[item.metric]
            measure = clip_t if spec.measure == "clip_t" else cosine
            self.values[item] = measure(features[output_key], features[other_key])
        self._run_lpips()

    def _encode(self, model: str, requests: dict[str, tuple]) -> dict[str, np.ndarray]:
        cache = self.scorer.cache
        found: dict[str, np.ndarray] = {}
        missing = {"image": [], "text": []}
        for key, (kind, payload) in requests.items():
            cached = cache.get(key)
            if cached is not None:
                found[key] = cached
            else:
                missing[kind].append((key, payload))
        if not missing["image"] and not missing["text"]:
            return found
        encoder = self.scorer.models.get(model)
        size = self.scorer.batch_size
        for kind, items in missing.items():
            if not items:
                continue
            encode = encoder.encode_images if kind == "image" else encoder.encode_texts
            for start in range(0, len(items), size):
                batch = items[start:start + size]
                rows = encode([payload for _, payload in batch])
                self.scorer.model_calls += len(batch)
                for (key, _), feature in zip(batch, rows):
                    found[key] = feature
                    cache.put(key, feature)
        return found

    def _run_lpips(self) -> None:
        by_model: dict[str, list] = {}
        for job in self.lpips_jobs:
            by_model.setdefault(job[1], []).append(job)
        size = self.scorer.batch_size
        for model, jobs in by_model.items():
            distance = self.scorer.models.get(model)
            # Reference views repeat across a case's mask conditions: one feature pass each.
            reference_features: dict[str, list] = {}
            references = {}
            for _, _, (_, reference_view, _) in jobs:
                references.setdefault(array_key(reference_view), reference_view)
            reference_features.update(self._lpips_features(distance, references, size))
            outputs = {array_key(view[0]): view[0] for _, _, view in jobs}
            output_features = self._lpips_features(distance, outputs, size)
            for item, _, (output_view, reference_view, pixels) in jobs:
                output_feature = output_features.get(array_key(output_view))
                reference_feature = reference_features.get(array_key(reference_view))
                if output_feature is None or reference_feature is None:
                    self.values[item] = math.nan
                    self.reasons[item] = (f"image {output_view.shape[1]}x{output_view.shape[0]} is too small "
                                          f"for {model}'s network")
                    continue
                self.values[item] = distance.distance(output_feature, reference_feature, pixels)

    def _lpips_features(self, distance, images: dict[str, np.ndarray], size: int) -> dict[str, list]:
        by_shape: dict[tuple, list] = {}
        for key, image in images.items():
            by_shape.setdefault(image.shape, []).append((key, image))
        features = {}
        for group in by_shape.values():
            for start in range(0, len(group), size):
                batch = group[start:start + size]
                try:
                    batch_features = distance.features([image for _, image in batch])
                except RuntimeError:
                    # Pooling layers refuse inputs smaller than the network's receptive field; every
                    # image of the batch has the same shape, so none of them can be scored.
                    continue
                for (key, _), feature in zip(batch, batch_features):
                    features[key] = feature
                self.scorer.model_calls += len(batch)
        return features
