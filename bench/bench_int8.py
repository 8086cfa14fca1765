"""Int8 against float VGG16 features on flowers-full photos the int8 calibration never saw.

    python bench/bench_int8.py [--photos 48] [--sizes 224] [--calibration DIR] [--seed 0] [--quick]

The int8 model is built fresh (a temporary models folder) exactly as the engine builds it
(int8.load_int8_network: the shipped calibration photos, or --calibration DIR's, at
CALIBRATION_SIZE) and compared with ONNX Runtime's float model of the same graph
(int8.float_network) on `--photos` flowers-full photos, drawn per class with `--seed` among those
whose Flickr id is in neither the shipped nor the --calibration set, decoded and resized by the engine
(data.images.decode_image, resize_square). Per size: the mean, 5th percentile and min cosine of
int8 vs float features per photo, on the raw pooled features and on the square-rooted ones the
head learns from (head.ROOT_EPSILON).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

FLOWERS_FULL_ZIP = common.REPO_ROOT.parent / "shared" / "datasets" / "flowers-full" / "flowers.zip"
FLICKR_ID = re.compile(r"(\d+)_[0-9a-f]+(?:_[a-z])?\.jpg$")


def unseen_photos(count: int, seed: int, calibration_dirs) -> list[tuple[str, bytes]]:
    """`count` flowers-full photos (name, bytes), dealt round-robin over the classes, none of the calibration
    folders' (by Flickr id)."""
    import numpy as np

    taken = {m.group(1) for d in calibration_dirs for p in Path(d).iterdir() if (m := FLICKR_ID.search(p.name))}
    with zipfile.ZipFile(FLOWERS_FULL_ZIP) as archive:
        names = [n for n in archive.namelist() if n.endswith(".jpg")]
        classes = sorted({n.split("/")[0] for n in names})
        pools = []
        for number, name in enumerate(classes):
            files = sorted(n for n in names if n.startswith(name + "/") and FLICKR_ID.search(n).group(1) not in taken)
            pools.append([files[i] for i in np.random.default_rng([seed, number]).permutation(len(files))])
        chosen = [pools[i % len(pools)][i // len(pools)] for i in range(count)]
        return [(name, archive.read(name)) for name in sorted(chosen)]


def cosines(a, b):
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.einsum("ij,ij->i", a, b) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def summary(values) -> dict:
    import numpy as np

    return {"mean": float(np.mean(values)), "p5": float(np.percentile(values, 5)), "min": float(np.min(values))}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--photos", type=int, default=48)
    p.add_argument("--sizes", default="224", help="comma-separated image sizes (default %(default)s)")
    p.add_argument("--calibration", default=None, help="a folder of calibration photos instead of the shipped one")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.quick:
        args.photos, args.sizes = 5, "64"
    _, info = common.begin(args)

    import numpy as np

    from quasar_core import backbone
    from quasar_core.data import Limits
    from quasar_core.data.images import decode_image, resize_square
    from quasar_core.features import int8, int8_quantize
    from quasar_core.head import ROOT_EPSILON

    shipped = int8_quantize.CALIBRATION_DIR
    if args.calibration:
        # read by int8_quantize.calibration_images when building
        int8_quantize.CALIBRATION_DIR = Path(args.calibration).resolve()
    # Never the shipped set's photos either, so a --calibration run compares on the same photos.
    photos = unseen_photos(args.photos, args.seed, {shipped, int8_quantize.CALIBRATION_DIR})
    limits = Limits.from_env()
    pixels = [decode_image(data, name, limits=limits).pixels for name, data in photos]
    calibration = int8_quantize.CALIBRATION_DIR
    print(f"{len(photos)} unseen flowers-full photos; calibration {calibration} (recipe {int8.RECIPE})", flush=True)
    results = {"machine": info, "photos": [name for name, _ in photos], "calibration": str(calibration),
               "recipe": int8.RECIPE, "variant": int8_quantize.QUANT_VARIANT, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="quasar-bench-int8-", dir=args.tmp) as models:
        for size in (int(s) for s in args.sizes.split(",")):
            images = np.stack([resize_square(p, size) for p in pixels]).astype(np.float32)
            common.quiet(args)
            started = time.perf_counter()
            quantized = int8.load_int8_network(weights_path=common.weights_path(), weights_id=backbone.weights_id(),
                                               image_size=size, models_dir=models)
            built = time.perf_counter() - started
            reference = int8.float_network(weights_path=common.weights_path(), image_size=size)
            # A few photos a batch: float convolutions at 224 px take ~0.3 GB a photo in ONNX Runtime.
            batches = [images[i:i + 4] for i in range(0, len(images), 4)]
            got = np.concatenate([quantized(b) for b in batches])
            want = np.concatenate([reference(b) for b in batches])
            root = lambda x: np.sqrt(np.maximum(x, 0) + ROOT_EPSILON)  # noqa: E731 (the head's transform)
            row = {"raw": summary(cosines(got, want)), "rooted": summary(cosines(root(got), root(want))),
                   "build_or_load_s": built}
            results["sizes"][str(size)] = row
            print(f"  {size:4d} px  raw cosine mean {row['raw']['mean']:.4f}  p5 {row['raw']['p5']:.4f}  "
                  f"min {row['raw']['min']:.4f}  |  square-rooted mean {row['rooted']['mean']:.4f}  "
                  f"p5 {row['rooted']['p5']:.4f}  min {row['rooted']['min']:.4f}  (int8 model built in {built:.1f} s)",
                  flush=True)
    print(f"results: {common.write_results('bench_int8', results, quick=args.quick)}")


if __name__ == "__main__":
    main()
