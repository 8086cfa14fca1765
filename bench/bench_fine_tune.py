"""Fine-tuning against what the CPU can do: photos/s of an epoch of VGG16's top block(s) on cached boundary
activations, as arithmetic per second beside VGG16's own forward pass on the same machine.

    python bench/bench_fine_tune.py [--photos 128] [--image-size 224] [--blocks 1] [--epochs 2] [--quick]

In one process: VGG16 with the ImageNet weights; float32 forward photos/s of the whole conv stack measured
by planning.measure_forward_rate (what Configure's estimate uses); then tuning.FineTuner.fit on `--photos`
random-pixel photos' boundary activations (block4_pool for one block), `--epochs` epochs, batch 32, the
first epoch untimed (tracing). An epoch is a forward and a backward pass of the unfrozen blocks: counted as
3x their forward GFLOPs (a backward pass is about twice a forward). Prints both rates in GFLOP/s and their
ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

TRAINING_ARITHMETIC = 3  # forward + backward, in forward passes


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--photos", type=int, default=128)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    common.begin(args)
    if args.quick:
        args.photos, args.image_size, args.epochs = 16, 64, 2

    import numpy as np

    from quasar_core import planning
    from quasar_core.backbone import BLOCKS, boundary_layer
    from quasar_core.config import TrainConfig
    from quasar_core.features.networks import keras_network
    from quasar_core.head import fit_head
    from quasar_core.progress import TrainingHooks
    from quasar_core.tuning import FineTuner

    base = common.shared_base_loader()()
    common.quiet(args)
    forward_rate = planning.measure_forward_rate(base)  # float32 photos/s at 224 px
    forward_gflops = forward_rate * planning.vgg16_gflops(224)

    rng = np.random.default_rng(0)
    size, frozen = args.image_size, BLOCKS - args.blocks
    images = rng.uniform(0, 255, (args.photos, size, size, 3)).astype(np.float32)
    boundary = boundary_layer(frozen)
    to_boundary = keras_network(base, stop_at=boundary, pooled=False)
    activations = np.concatenate([to_boundary(images[i:i + 16]) for i in range(0, len(images), 16)])[None]
    pooled = np.concatenate([keras_network(base)(images[i:i + 16]) for i in range(0, len(images), 16)])
    targets = np.arange(args.photos) % 2
    head = fit_head(pooled, targets, n_classes=2, strength=0.1)
    epochs = []
    hooks = TrainingHooks(on_epoch_end=lambda row: epochs.append(time.perf_counter()))
    config = TrainConfig(mode="fine-tune", fine_tune_blocks=args.blocks, fine_tune_epochs=args.epochs, batch_size=32,
                         image_size=size)
    common.quiet(args)
    started = time.perf_counter()
    FineTuner(config, base, boundary, hooks=hooks).fit(activations, targets, np.arange(args.photos), start=head)
    times = np.diff([started, *epochs])
    per_epoch = float(np.median(times[1:])) if len(times) > 1 else float(times[0])
    rate = args.photos / per_epoch
    top = planning.vgg16_gflops(size, from_block=frozen + 1)
    tune_gflops = rate * top * TRAINING_ARITHMETIC
    print(f"VGG16 forward, float32, 224 px: {forward_rate:.2f} photos/s = {forward_gflops:.0f} GFLOP/s")
    print(f"fine-tuning the top {args.blocks} block(s) at {size} px on {args.photos} photos: {per_epoch:.2f} s an "
          f"epoch (median of {len(times) - 1} after the first) = {rate:.1f} photos/s; {top:.2f} GFLOP forward a photo "
          f"x {TRAINING_ARITHMETIC} = {tune_gflops:.0f} GFLOP/s")
    print(f"fine-tuning / forward arithmetic rate: {tune_gflops / forward_gflops:.2f}x "
          f"(epochs: {', '.join(f'{t:.2f}' for t in times)} s)")


if __name__ == "__main__":
    main()
