"""Write the bundled sample dataset (or a held-out set) from the Fashion-MNIST training split.

    python scripts/make_sample_dataset.py                       # sample_data/fashion, 60 per class
    python scripts/make_sample_dataset.py --holdout /tmp/unseen --per-class 20

The sample comes only from images 0..29,999 and the hold-out only from 30,000 on, so
the two never overlap and the hold-out is unseen by anything trained on the sample.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"
DEFAULT_OUTPUT = REPO_ROOT / "sample_data" / "fashion"
# Fashion-MNIST label -> folder name; five classes that look clearly different.
CLASSES = {0: "T-shirt", 1: "Trouser", 7: "Sneaker", 8: "Bag", 9: "Ankle boot"}
SAMPLE_POOL_END = 30_000  # sample from images [0, 30000), hold-out from [30000, 60000)
IMAGE_SIDE = 28


def read_fashion_mnist(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) uint8 from the gzip IDX files."""
    with gzip.open(source / "train-images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    with gzip.open(source / "train-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
    return images, labels


def choose(labels: np.ndarray, label: int, start: int, stop: int, count: int, seed: int) -> np.ndarray:
    """`count` indices of `label` in [start, stop), seeded, in ascending order."""
    pool = start + np.flatnonzero(labels[start:stop] == label)
    if len(pool) < count:
        raise ValueError(f"only {len(pool)} images of label {label} in [{start}, {stop}); asked for {count}")
    # One generator per class so adding a class later does not reshuffle the others.
    rng = np.random.default_rng([seed, label])
    return np.sort(rng.choice(pool, size=count, replace=False))


def write_set(images, labels, output: Path, start: int, stop: int, per_class: int, seed: int) -> int:
    written = 0
    for label, folder_name in CLASSES.items():
        folder = output / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        # Remove this script's own earlier output so a smaller --per-class leaves no strays.
        for old in folder.glob(f"{folder_name}_*.png"):
            old.unlink()
        for number, index in enumerate(choose(labels, label, start, stop, per_class, seed)):
            Image.fromarray(images[index]).save(folder / f"{folder_name}_{number:03d}.png", optimize=True)
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the Fashion-MNIST .gz files")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the sample goes")
    parser.add_argument("--holdout", type=Path, help="write a hold-out set (images 30,000+) here instead of the sample")
    parser.add_argument("--per-class", type=int, default=60, help="images per class (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error(f"--per-class must be at least 1, got {args.per_class}")

    images, labels = read_fashion_mnist(args.source)
    if args.holdout:
        output, start, stop = args.holdout, SAMPLE_POOL_END, len(labels)
    else:
        output, start, stop = args.output, 0, SAMPLE_POOL_END
    written = write_set(images, labels, output, start, stop, args.per_class, args.seed)
    print(f"wrote {written} images ({args.per_class} per class, from images {start}..{stop - 1}) to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
