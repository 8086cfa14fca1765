"""Before training: how long it will take and whether it fits in memory, on this machine.

Time is VGG16's arithmetic (which grows with the square of the image size) at a rate
measured on this machine, for the photos whose features are not in the cache yet, plus the
decoding of those photos, the heads on the folds and fine-tuning's epochs. Photos already in
the cache cost nothing, so a second training of the same photos is estimated (and takes)
seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from quasar_core.backbone import BLOCKS
from quasar_core.config import TrainConfig
from quasar_core.crossval import LEARNING_SHARES, fold_plan
from quasar_core.errors import ResourceLimitError
from quasar_core.features.extract import batch_size_for
from quasar_core.features.networks import keras_network
from quasar_core.features.precision import cpu_supports_bfloat16, float_beside, int8_instructions
from quasar_core.head import STRENGTHS

# VGG16's conv layers: (block, input channels, output channels), image side halved after each block.
_VGG16_CONVS = [(1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (3, 128, 256), (3, 256, 256),
                (3, 256, 256), (4, 256, 512), (4, 512, 512), (4, 512, 512), (5, 512, 512), (5, 512, 512),
                (5, 512, 512)]
MEMORY_LIMIT_ENV = "QUASAR_MEMORY_LIMIT_MB"
# Measured costs on the machines of bench/README.md (the figures and their benches there, "Why the engine is
# built as it is"). Writing the run (head, examples, evaluation) and starting the job:
FIXED_OVERHEAD_SECONDS = 1.5
HEAD_FIT_SECONDS = 0.02  # one logistic regression on a few hundred photos' features
DECODE_SECONDS_PER_MEGAPIXEL = 0.012  # Pillow decoding + THE resize, per source megapixel
BACKWARD_FACTOR = 3.5  # a fine-tuning step / a forward pass
FINE_TUNE_FIT_SECONDS = 3.0  # building, compiling, tracing one fine-tuning model, its checkpoints
AUGMENT_SECONDS = 0.009  # random layers on one photo


def speedup(precision: str) -> float:
    """How much faster than float32 VGG16 runs in `precision` on this CPU (measured in bench/)."""
    if precision == "bfloat16":
        # native bf16 was faster than float32 on one CPU and slower on another (bench/README.md): no gain
        # is promised; emulated bf16 is slower than float32
        return 1.0 if cpu_supports_bfloat16() else 0.9
    if precision == "int8":  # feature pass vs float32's, with AVX2 alone or with VNNI (bench/README.md)
        return 4.0 if set(int8_instructions()) - {"avx2"} else 2.7
    return 1.0


def vgg16_gflops(image_size: int, *, from_block: int = 1, to_block: int = 5) -> float:
    """Multiply-adds x 2 of VGG16's conv layers in blocks `from_block`..`to_block`, for one square image."""
    total = 0.0
    for block, cin, cout in _VGG16_CONVS:
        if from_block <= block <= to_block:
            side = image_size / 2 ** (block - 1)
            total += side * side * 9 * cin * cout * 2
    return total / 1e9


def seconds_per_photo(config: TrainConfig, *, rate_at_224: float = 3.4, precision: str = "float32",
                      to_block: int = 5) -> float:
    """VGG16 seconds for one photo at the config's size (blocks 1..`to_block`), from a photos/s rate at 224 px."""
    return vgg16_gflops(config.image_size, to_block=to_block) / vgg16_gflops(224) / (rate_at_224 * speedup(precision))


@dataclass(frozen=True)
class TimeEstimate:
    feature_seconds: float
    head_seconds: float
    fine_tune_seconds: float
    overhead_seconds: float = FIXED_OVERHEAD_SECONDS

    @property
    def total_seconds(self) -> float:
        return self.feature_seconds + self.head_seconds + self.fine_tune_seconds + self.overhead_seconds


def estimate_training_time(config: TrainConfig, n_photos: int, *, rate_at_224: float, precision: str = "float32",
                           uncached_views: int | None = None, uncached_boundary_views: int | None = None,
                           megapixels: float = 0.1) -> TimeEstimate:
    """Seconds per phase for `n_photos`, of which `uncached_views` photo-views still need VGG16.

    `rate_at_224` is float32 photos per second at 224 px on this machine; `precision` what will run;
    `megapixels` the photos' median size (decoding them costs too). Fine-tuning's boundary
    activations are a pass of their own (`uncached_boundary_views`, default as many as `uncached_views`).
    """
    if rate_at_224 <= 0:
        raise ValueError(f"rate_at_224 must be positive, got {rate_at_224!r}.")
    views = config.views
    uncached = n_photos * views if uncached_views is None else uncached_views
    decode = DECODE_SECONDS_PER_MEGAPIXEL * megapixels
    per_photo = seconds_per_photo(config, rate_at_224=rate_at_224, precision=precision)
    features = uncached * (per_photo + decode)
    features += uncached * (views - 1) / views * AUGMENT_SECONDS
    cross_validates = not (config.fine_tunes or n_photos > config.max_cv_photos)
    folds, dealings = fold_plan(n_photos, config) if cross_validates else (1, 1)
    # 5 strengths on the first dealing of the folds, the chosen one on each further dealing, the learning
    # curve's three shares on the first dealing, the kept head
    fits = folds * (len(STRENGTHS) + dealings - 1 + (len(LEARNING_SHARES) if folds > 1 else 0)) + 1
    head = fits * HEAD_FIT_SECONDS * max(1.0, n_photos * views / 300)
    fine_tune = 0.0
    if config.fine_tunes:
        frozen_blocks = BLOCKS - config.fine_tune_blocks
        # The boundary activations: the frozen blocks again, in float (int8 makes pooled features only).
        boundary = uncached if uncached_boundary_views is None else uncached_boundary_views
        features += boundary * (decode + seconds_per_photo(config, rate_at_224=rate_at_224, to_block=frozen_blocks,
                                                           precision=float_beside(precision)))
        top = vgg16_gflops(config.image_size, from_block=frozen_blocks + 1) / vgg16_gflops(224)
        step = top / rate_at_224  # float32: fine-tuning trains in float
        learned = n_photos * views
        # the hold-out estimate (80 % of the photos, tested on 20 % each epoch) and the kept model (all)
        fine_tune = config.fine_tune_epochs * (1.8 * learned * BACKWARD_FACTOR + 0.2 * n_photos) * step
        fine_tune += 2 * FINE_TUNE_FIT_SECONDS
    return TimeEstimate(features, head, fine_tune)


def estimate_best_time(candidates: list[TrainConfig], n_photos: int, *, rate_at_224: float, precision: str,
                       uncached_views: int | None = None, megapixels: float = 0.1) -> TimeEstimate:
    """Best accuracy tries every candidate: their feature passes (shared where they share a size), heads
    and fine-tuning added up, and the winner's refit on the cached features (counted as the costliest
    candidate's heads). Augmented candidates are tried only at the size that leads (selection.fit_best):
    one of them runs, counted as their average. `uncached_views` is for the first candidate; the others'
    are all counted."""
    features = head = fine_tune = refit = 0.0
    augmented: list[TimeEstimate] = []
    passes: dict[int, int] = {}  # image size -> views already counted
    for number, config in enumerate(candidates):
        done = passes.get(config.image_size, 0)
        uncached = (uncached_views if number == 0 and uncached_views is not None
                    else n_photos * max(config.views - done, 0))
        part = estimate_training_time(config, n_photos, rate_at_224=rate_at_224, precision=precision,
                                      uncached_views=uncached, uncached_boundary_views=n_photos * config.views,
                                      megapixels=megapixels)
        if not config.fine_tunes:
            refit = max(refit, part.head_seconds)
        if config.augment and not config.fine_tunes and number > 0:
            augmented.append(part)
            continue
        passes[config.image_size] = max(done, config.views)
        features, head, fine_tune = features + part.feature_seconds, head + part.head_seconds, \
            fine_tune + part.fine_tune_seconds
    if augmented:
        features += sum(part.feature_seconds for part in augmented) / len(augmented)
        head += sum(part.head_seconds for part in augmented) / len(augmented)
    return TimeEstimate(features, head + refit, fine_tune)


def measure_forward_rate(base, *, image_size: int = 96, batch: int = 8) -> float:
    """float32 photos per second of VGG16's conv stack on this machine, scaled to 224 px by FLOPs."""
    import numpy as np

    network = keras_network(base, precision="float32")
    images = np.random.default_rng(0).uniform(0, 255, (batch, image_size, image_size, 3)).astype(np.float32)
    network(images)  # trace and warm up
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        network(images)
        best = min(best, time.perf_counter() - started)
    return batch / best * vgg16_gflops(image_size) / vgg16_gflops(224)


# --- memory -------------------------------------------------------------------------------------
def _boundary_bytes(image_size: int, frozen_blocks: int) -> int:
    side = image_size / 2**frozen_blocks
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[frozen_blocks]
    return int(side * side * channels * 4)


# Measured by bench/bench_memory.py (whole `quasar train` processes on 250 flowers photos, and the imports alone;
# bench/README.md "Memory"), in MiB as the kernel counts a process's peak (VmHWM):
RUNTIME_BYTES = 216 * 1024**2  # Python, NumPy, SciPy, scikit-learn, ONNX Runtime and the engine imported
# TensorFlow and Keras, imported when the job needs them (uses_tensorflow). Calibrated on Best's measured peak
# (909 MiB with them, bench/README.md): importing them alone peaks 481 MiB higher, but ~250 MiB stay resident.
TENSORFLOW_BYTES = 250 * 1024**2
VGG16_BYTES = 120 * 1024**2  # VGG16 loaded: its weights (14.7 M parameters) as Keras' model or the int8 one
JOB_FIXED_BYTES = 60 * 1024**2  # the job's own: datasets, folds, the heads, writing the run
MEMORY_MARGIN = 1.0  # on the job's share (calibrated: the activations' formula already has its slack)


def _job_bytes(config: TrainConfig, n_photos: int) -> tuple[int, int]:
    """(the feature pass's and fine-tuning's working memory, the pooled features kept) for one setting."""
    size = config.image_size
    pass_activations = int(batch_size_for(size) * 3 * size * size * 64 * 4)
    features = n_photos * config.views * 1024 * 4 * 3  # cache, views and the folds' copies
    fine_tune = 0
    if config.fine_tunes:
        frozen = 5 - config.fine_tune_blocks
        fine_tune = n_photos * config.views * _boundary_bytes(size, frozen) * 2  # activations + one copy
        fine_tune += config.batch_size * 9 * _boundary_bytes(size, frozen) * config.fine_tune_blocks
        fine_tune += 3 * 4 * 2_400_000 * 4 * config.fine_tune_blocks  # trainable weights + Adam slots
    return pass_activations + fine_tune, features


def uses_tensorflow(config: TrainConfig, precision: str | None = None) -> bool:
    """Whether a job with this setting imports TensorFlow: augmentation (Keras' random layers), fine-tuning,
    or VGG16 in float (int8 runs through ONNX Runtime). `precision` is what will run (None: as chosen here)."""
    if config.fine_tunes or config.augment:
        return True
    if precision is None:
        from quasar_core.features.precision import choose_precision

        try:
            precision = choose_precision(config.precision, random_weights=config.weights == "none").precision
        except (ValueError, OSError):
            precision = "float32"
    return precision != "int8"


def base_memory(tensorflow: bool = True) -> int:
    """Bytes of the runtime, VGG16 and (when `tensorflow`) TensorFlow in a process that trains."""
    return RUNTIME_BYTES + VGG16_BYTES + (TENSORFLOW_BYTES if tensorflow else 0)


def estimate_training_memory(config: TrainConfig, n_photos: int, *, candidates: list[TrainConfig] | None = None,
                             precision: str | None = None) -> int:
    """Bytes at the peak of a process that trains `config` (Best accuracy: every one of its `candidates`).

    The runtime and VGG16 count, TensorFlow when any setting needs it (uses_tensorflow; `precision` what
    will run, None: as chosen on this machine); then the costliest setting's feature pass and fine-tuning
    (the preset's largest image size and views: candidates run one after the other) and the pooled features
    of every candidate (4 KB a photo and view, a few copies: Best keeps them to compare). Photos are
    streamed, so their pixels do not count.
    """
    configs = list(candidates or []) or [config]
    parts = [_job_bytes(c, n_photos) for c in configs]
    job = max(work for work, _ in parts) + sum(kept for _, kept in parts) + JOB_FIXED_BYTES
    tensorflow = any(uses_tensorflow(c, precision) for c in configs)
    return int(base_memory(tensorflow) + job * MEMORY_MARGIN)


def memory_limit_bytes(*, proc_cgroup: str | Path = "/proc/self/cgroup",
                       cgroup_root: str | Path = "/sys/fs/cgroup") -> int:
    """What the process may use: QUASAR_MEMORY_LIMIT_MB, else the smallest cgroup limit, else physical RAM.

    The roots are parameters so a test can point them at a fake file tree.
    """
    configured = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if configured:
        try:
            return int(float(configured) * 1024**2)
        except ValueError:
            raise ValueError(f"{MEMORY_LIMIT_ENV} must be a number of megabytes, got {configured!r}.") from None
    limits = _cgroup_memory_limits(Path(proc_cgroup), Path(cgroup_root))
    if limits:
        return min(limits)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def _cgroup_memory_limits(proc_cgroup: Path, root: Path) -> list[int]:
    """Every memory limit set on the process's own cgroup or an ancestor (v2 and v1), and at the top level.

    A container's limit may sit on the process's own cgroup rather than the top level (Community Cloud
    sets it on a v1 sub-cgroup), so its path from /proc/self/cgroup is walked up to the root.
    "max" and v1's huge sentinel (about 2**63) mean no limit.
    """
    files = [root / "memory.max", root / "memory" / "memory.limit_in_bytes"]
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, cgroup_path = rest.partition(":")
        parts = [part for part in cgroup_path.split("/") if part not in ("", ".", "..")]
        if hierarchy == "0" and controllers == "":  # v2 (unified; under unified/ on hybrid systems)
            bases, name = [root, root / "unified"], "memory.max"
        elif "memory" in controllers.split(","):  # v1's memory controller
            bases, name = [root / "memory"], "memory.limit_in_bytes"
        else:
            continue
        for base in bases:
            files += [base.joinpath(*parts[:depth]) / name for depth in range(len(parts), 0, -1)]
    limits = []
    for path in dict.fromkeys(files):  # once each, in order
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    return limits


def current_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_memory(config: TrainConfig, n_photos: int, *, reserved_bytes: int = 0,
                 candidates: list[TrainConfig] | None = None) -> int:
    """Raise ResourceLimitError, before anything starts, when the job would not fit. Returns its estimate.

    The estimate counts the runtime, VGG16 and TensorFlow; what this process holds already counts towards
    them (a server loads them once), and only what it holds beyond them is taken from the limit.
    """
    need = estimate_training_memory(config, n_photos, candidates=candidates)
    tensorflow = any(uses_tensorflow(c) for c in (list(candidates or []) or [config]))
    beyond_base = max(current_rss_bytes() - base_memory(tensorflow), 0)
    free = memory_limit_bytes() - beyond_base - reserved_bytes
    if need > free:
        raise ResourceLimitError(
            f"This training needs about {need / 1024**3:.1f} GB of memory but only {max(free, 0) / 1024**3:.1f} GB "
            "is free here. Choose a smaller image size, fewer augmented copies, feature extraction instead of "
            "fine-tuning, or fewer photos."
        )
    return need


# --- the plan shown before training ----------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    time: TimeEstimate
    sizes: list[dict]  # {"image_size", "seconds"} for the size trade-off table
    precision: str
    precision_reason: str
    n_photos: int
    cached_views: int  # photo-views whose features are already on disk
    method: str  # how accuracy will be measured, in words


def plan(dataset, config: TrainConfig, *, rate_at_224: float, precision, cached_views: int = 0,
         sizes=(64, 96, 128, 160, 224), candidates: list[TrainConfig] | None = None) -> Plan:
    """Time for these settings (and other image sizes) on this machine; `precision` a PrecisionChoice.

    With `candidates` (Best accuracy), the time of trying them all."""
    import numpy as np

    n = len(dataset)
    megapixels = float(np.median([w * h for w, h in (s.original_size for s in dataset.samples)])) / 1e6
    uncached = max(0, n * config.views - cached_views)
    if candidates and len(candidates) > 1:
        time_estimate = estimate_best_time(candidates, n, rate_at_224=rate_at_224, precision=precision.precision,
                                           uncached_views=uncached, megapixels=megapixels)
    else:
        time_estimate = estimate_training_time(config, n, rate_at_224=rate_at_224, precision=precision.precision,
                                               uncached_views=uncached, megapixels=megapixels)
    # The chosen size's row is the estimate above (cached features, Best's candidates): one number, not two.
    table = [{"image_size": size, "seconds": time_estimate.total_seconds if size == config.image_size else
              estimate_training_time(config.replace(image_size=size), n, rate_at_224=rate_at_224,
                                     precision=precision.precision, megapixels=megapixels).total_seconds}
             for size in sorted({*sizes, config.image_size})]
    if config.fine_tunes or n > config.max_cv_photos:
        method = f"a held-out test of about {round(n * config.holdout_fraction)} of your {n} photos"
    else:
        counts = np.bincount(dataset.targets()) if n else np.zeros(1, int)
        folds, dealings = fold_plan(n, config, smallest_class=int(counts[counts > 0].min()) if counts.any() else None)
        method = f"{folds}-fold cross-validation: every one of your {n} photos is tested once"
        if dealings > 1:
            method += f", {dealings} times over with the photos dealt into new folds"
    return Plan(time_estimate, table, precision.precision, precision.reason, n, cached_views, method)
