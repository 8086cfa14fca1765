"""Before training: presets, how long it will take, and whether it fits in memory.

Time is estimated from VGG16's arithmetic (which grows with the square of the image size)
and a forward-pass rate measured on this machine; memory from the sizes of what is held.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Augmentation, TrainConfig
from .errors import ResourceLimitError

PRESETS: dict[str, TrainConfig] = {
    "Quick look": TrainConfig(image_size=96, epochs=30, augment=False),
    "Balanced": TrainConfig(image_size=128, epochs=30, augment=True, augmentation=Augmentation(views=2)),
    "Best accuracy": TrainConfig(image_size=224, epochs=30, augment=True, mode="fine-tune",
                                 augmentation=Augmentation(views=2), fine_tune_epochs=5, fine_tune_blocks=1),
}
PRESET_DESCRIPTIONS = {
    "Quick look": "A first model in about a minute: small images, no augmentation.",
    "Balanced": "Sharper images and augmented copies: better accuracy for a few minutes more.",
    "Best accuracy": "Full-size images, augmentation and fine-tuning of VGG16's top block: slowest, most accurate.",
}

# VGG16's conv layers: (block, input channels, output channels), image side halved after each block.
_VGG16_CONVS = [(1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (3, 128, 256), (3, 256, 256),
                (3, 256, 256), (4, 256, 512), (4, 512, 512), (4, 512, 512), (5, 512, 512), (5, 512, 512),
                (5, 512, 512)]
MEMORY_LIMIT_ENV = "QUASAR_MEMORY_LIMIT_MB"
# Building and tracing the networks, assembling and saving the model: ~1-2 s per run here,
# whatever the data (measured on 24 images at 32 px: 1.2-2.2 s against 0.2 s of arithmetic).
FIXED_OVERHEAD_SECONDS = 2.0


def vgg16_gflops(image_size: int, *, from_block: int = 1) -> float:
    """Multiply-adds x 2 of VGG16's conv layers from `from_block` on, for one square image."""
    total = 0.0
    for block, cin, cout in _VGG16_CONVS:
        if block >= from_block:
            side = image_size / 2 ** (block - 1)
            total += side * side * 9 * cin * cout * 2
    return total / 1e9


@dataclass(frozen=True)
class TimeEstimate:
    feature_seconds: float
    head_seconds: float
    fine_tune_seconds: float
    evaluate_seconds: float

    @property
    def total_seconds(self) -> float:
        return (FIXED_OVERHEAD_SECONDS + self.feature_seconds + self.head_seconds + self.fine_tune_seconds
                + self.evaluate_seconds)


def estimate_training_time(config: TrainConfig, n_train: int, n_val: int, n_test: int, *,
                           images_per_second_at_224: float, precision_speedup: float = 1.0) -> TimeEstimate:
    """Seconds per phase, from a measured fp32 forward rate at 224 px.

    precision_speedup is how much faster the feature pass runs in the chosen precision
    (about 2 with bfloat16 on CPUs that support it).
    """
    if images_per_second_at_224 <= 0:
        raise ValueError(f"images_per_second_at_224 must be positive, got {images_per_second_at_224!r}.")
    gflops_per_second = images_per_second_at_224 * vgg16_gflops(224)
    per_image = vgg16_gflops(config.image_size) / gflops_per_second
    views = config.augmentation.views if config.augment else 1
    features = (n_train * views + n_val) * per_image / precision_speedup
    # The head trains on 512 numbers per image: ~20 microseconds a sample-epoch, plus Keras' overhead.
    head = config.epochs * (0.08 + (n_train * views + n_val) * 2e-5)
    fine_tune = 0.0
    if config.fine_tunes:
        top_block = 6 - config.fine_tune_blocks
        top = vgg16_gflops(config.image_size, from_block=top_block) / gflops_per_second
        # forward + backward is about three forward passes, in fp32
        fine_tune = config.fine_tune_epochs * (n_train * views * 3 * top + n_val * top)
    evaluate = n_test * per_image
    return TimeEstimate(features, head, fine_tune, evaluate)


def measure_forward_rate(base, *, image_size: int = 96, batch: int = 8, precision: str = "float32") -> float:
    """Images per second of VGG16's conv stack on this machine, scaled to 224 px by FLOPs."""
    import tensorflow as tf

    from .backbone import feature_network

    network = feature_network(base, precision=precision)
    forward = tf.function(lambda x: network(x, training=False))
    images = tf.random.uniform((batch, image_size, image_size, 3), -120, 120, seed=0)
    forward(images)  # trace and warm up
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        forward(images).numpy()
        best = min(best, time.perf_counter() - started)
    rate = batch / best
    return rate * vgg16_gflops(image_size) / vgg16_gflops(224)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- memory -------------------------------------------------------------------------------------
def _boundary_bytes(image_size: int, frozen_blocks: int) -> int:
    side = image_size / 2**frozen_blocks
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[frozen_blocks]
    return int(side * side * channels * 4)


def estimate_training_memory(config: TrainConfig, n_images: int, *, n_train: int | None = None) -> int:
    """Bytes a training job adds to the process at its peak (the shared VGG16 base excluded)."""
    from .training import feature_batch_size

    n_train = n_train if n_train is not None else int(n_images * (1 - config.val_fraction - config.test_fraction))
    views = config.augmentation.views if config.augment else 1
    size = config.image_size
    weights = 2 * 58_900_000  # the frozen copy for the feature pass and the assembled model
    pass_activations = int(feature_batch_size(size) * 3 * size * size * 64 * 4)
    resized = n_images * size * size * 3 * 4  # float32 batches of train/val images at size
    frozen_blocks = 5 - config.fine_tune_blocks if config.fine_tunes else 5
    cache = (n_train * views + n_images - n_train) * _boundary_bytes(size, frozen_blocks)
    training = 0
    if config.fine_tunes:
        per_image = 3 * 3 * _boundary_bytes(size, frozen_blocks)  # forward kept + gradients, ~3 tensors a block
        training = config.batch_size * per_image * config.fine_tune_blocks + 58_900_000 * 3  # Adam slots
    return int((weights + pass_activations + resized + cache + training) * 1.25)


def memory_limit_bytes() -> int:
    """What the process may use: QUASAR_MEMORY_LIMIT_MB, else the cgroup limit, else physical RAM."""
    configured = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if configured:
        try:
            return int(float(configured) * 1024**2)
        except ValueError:
            raise ValueError(f"{MEMORY_LIMIT_ENV} must be a number of megabytes, got {configured!r}.") from None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def current_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_memory(config: TrainConfig, n_images: int, *, reserved_bytes: int = 0) -> int:
    """Raise ResourceLimitError, before anything starts, when the job would not fit. Returns its estimate."""
    need = estimate_training_memory(config, n_images)
    free = memory_limit_bytes() - current_rss_bytes() - reserved_bytes
    if need > free:
        raise ResourceLimitError(
            f"This training needs about {need / 1024**3:.1f} GB of memory but only {max(free, 0) / 1024**3:.1f} GB "
            "is free here. Choose a smaller image size, fewer augmented copies, feature extraction instead of "
            "fine-tuning, or fewer images."
        )
    return need


def suggest_sizes_table(config: TrainConfig, n_train: int, n_val: int, n_test: int, *,
                        images_per_second_at_224: float, precision_speedup: float = 1.0,
                        sizes=(64, 96, 128, 160, 224)) -> list[dict]:
    """The time trade-off of each input size, for the configure screen."""
    return [
        {"image_size": size,
         "seconds": estimate_training_time(config.replace(image_size=size), n_train, n_val, n_test,
                                           images_per_second_at_224=images_per_second_at_224,
                                           precision_speedup=precision_speedup).total_seconds}
        for size in sizes
    ]

