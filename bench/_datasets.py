"""The bench/ scripts' photo sets: Fashion-MNIST written as class folders, real photos at their own size
(flowers-full, weather4) split into disjoint train and unseen folders, subsets. Re-exported by _common (the
scripts use them as common.*). flowers-128 is not used: its photos were squashed to 128 x 128, which cost
VGG16 15-20 points and measured the squashing, not the product.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_FASHION = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"
FLOWERS_ENV = "QUASAR_BENCH_FLOWERS"
SHARED = REPO_ROOT.parent / "shared" / "datasets"
# name -> the zip of class folders (real photos at their own size; never copied into the repo)
REAL_PHOTO_ZIPS = {"flowers": SHARED / "flowers-full" / "flowers.zip", "weather": SHARED / "weather4" / "photos.zip"}
SHARED_FLOWERS_ZIP = REAL_PHOTO_ZIPS["flowers"]
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def write_fashion_sets(root: Path, *, train_per_class: int, test_per_class: int, seed: int = 0):
    """Train images (Fashion-MNIST 0..29,999) and unseen test images (30,000+) of the sample's
    five classes, written as PNG class folders by scripts/make_sample_dataset.py's own code."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import make_sample_dataset as msd

    images, labels = msd.read_fashion_mnist(DEFAULT_FASHION)
    train_dir, test_dir = Path(root) / "train", Path(root) / "test"
    msd.write_set(images, labels, train_dir, 0, msd.SAMPLE_POOL_END, train_per_class, seed)
    msd.write_set(images, labels, test_dir, msd.SAMPLE_POOL_END, len(labels), test_per_class, seed)
    return train_dir, test_dir


def flowers_dir() -> Path:
    """flowers-full's class folders: $QUASAR_BENCH_FLOWERS, or the shared zip unpacked once into bench/results."""
    return photos_dir("flowers")


def photos_dir(name: str) -> Path:
    """A real-photo set's class folders ("flowers": $QUASAR_BENCH_FLOWERS if set; "weather"), unpacked once from
    the shared zip into bench/results/<name>-full."""
    named = os.environ.get(FLOWERS_ENV) if name == "flowers" else None
    path = Path(named) if named else RESULTS_DIR / f"{name}-full"
    source = REAL_PHOTO_ZIPS[name]
    if not named and not path.is_dir() and source.is_file():
        import zipfile

        partial = path.with_name(f"{path.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(source) as archive:
            archive.extractall(partial)
        partial.rename(path)
    if not path.is_dir():
        sys.exit(f"{name} photos not found at {str(path)!r} (<class>/*.jpg) nor {str(source)!r}.")
    return path


def write_flowers_sets(root: Path, *, train_per_class: int, test_per_class: int | None, seed: int = 0,
                       name: str = "flowers"):
    """Disjoint train and unseen test folders of a real-photo set's photos (symlinks to photos_dir(name)).

    Per class the files are shuffled with `seed`; the first `train_per_class` train, the next
    `test_per_class` (None: all the rest) test.
    """
    import numpy as np

    source = photos_dir(name)
    train_dir, test_dir = Path(root) / "train", Path(root) / "test"
    for number, folder in enumerate(sorted(p for p in source.iterdir() if p.is_dir())):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        order = np.random.default_rng([seed, number]).permutation(len(files))
        chosen_train = [files[i] for i in order[:train_per_class]]
        rest = [files[i] for i in order[train_per_class:]]
        chosen_test = rest if test_per_class is None else rest[:test_per_class]
        for target, chosen in ((train_dir, chosen_train), (test_dir, chosen_test)):
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            for file in chosen:
                (target / folder.name / file.name).symlink_to(file)
    return train_dir, test_dir


def write_subset(source: Path, target: Path, per_class: int) -> Path:
    """The first `per_class` photos of each class folder of `source`, as symlinks under `target`."""
    for folder in sorted(p for p in Path(source).iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[:per_class]
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for file in files:
            (target / folder.name / file.name).symlink_to(file.resolve())
    return target


def count_photos(folder: Path) -> int:
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
