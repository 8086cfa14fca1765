"""Strangers: how often "none of these" calls photos of other things unknown or unusual, and the model's own not.

    nice -n 10 python bench/bench_strangers.py [--work /tmp/quasar-strangers] [--splits 5] [--per-kind 40]
                                               [--compare] [--doctor] [--quick]

Every photo goes once through the product's feature pass (FeaturePass, 224 px, int8 as the training
chooses on this machine), cached under `--work` so reruns cost no VGG16 time. Models are trained on
real photos; their "none of these" reference is fitted as `TransferClassifier.finish` fits it
(FamiliarityModel on the training photos' pooled features and labels). Then, per model and seeded split:
  own unseen     the model's classes' photos it did not learn from: share unknown (target <= 5 %), unusual
  other domain   Fashion-MNIST clothes, sklearn's digits, the other real-photo set (weather for flowers
                 models, flowers for weather models)
  near domain    classes of the same set the model did not learn (flowers-full's other species)
  thumbnails     real photos of other things shrunk to 32 px (as a user uploads a small photo: the
                 product upscales it), and sklearn/scikit-image's 25 px faces
  everyday       the photos scikit-image and scikit-learn ship (astronaut, cat, coffee, rocket,
                 motorbike, a temple...; sklearn's flower left out: a flower) and crops of them
Per kind: the share called unknown, unusual, and either (target: >= 85 % each, >= 95 % over ~80 photos
of other things). `--compare` also measures the candidate scores (bench README: why the chosen one).
`--doctor` plants 4 off-topic photos in flowers-full photos and ranks the doctor's outliers.

Photos (never in the repository): ../shared/datasets/flowers-full, weather4, fashion-mnist; scikit-image
(pip install scikit-image) and scikit-learn's bundled photos.
"""

from __future__ import annotations

import gzip
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SHARED = common.REPO_ROOT.parent / "shared" / "datasets"
IMAGE_SIZE = 224
THUMB = 32
FLOWERS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
WEATHER = ("cloudy", "rain", "shine", "sunrise")
# model name -> (photo set, classes learned, photos learned from per class)
MODELS = {
    "flowers: roses, tulips": ("flowers", ("roses", "tulips"), 120),
    "flowers: daisy, dandelion, roses": ("flowers", ("daisy", "dandelion", "roses"), 80),
    "weather: cloudy, shine": ("weather", ("cloudy", "shine"), 60),
    "weather: all four": ("weather", WEATHER, 60),
}
FLOWERS_PER_CLASS = 300  # of flowers-full's 633-898 a species: enough for every split, a third of the VGG16 time
KINDS = ("other domain", "near domain", "thumbnails", "everyday")


# --------------------------------------------------------------------------- the photos


def unzip_once(archive: Path, target: Path) -> Path:
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(partial)
        partial.rename(target)
    return target


def save(image, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        Image.fromarray(image).save(path)


def everyday_photos() -> dict[str, "object"]:
    """{name: uint8 RGB} of the photos scikit-image and scikit-learn ship (colour and grey, no flower)."""
    import numpy as np
    import skimage.data as sk
    from sklearn.datasets import load_sample_image

    names = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "page", "text", "brick",
             "grass", "gravel", "hubble_deep_field", "retina", "immunohistochemistry", "cell", "clock", "horse",
             "logo", "colorwheel")
    photos = {}
    for name in names:
        image = np.asarray(getattr(sk, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos[name] = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    left, right, _ = sk.stereo_motorcycle()
    photos["motorcycle"] = np.asarray(left)
    photos["china"] = load_sample_image("china.jpg")
    return photos


def crops(image, count: int, rng):
    """`count` random crops of 40-70 % of the sides (other views of the same scene: a person's close-ups)."""
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        share = rng.uniform(0.4, 0.7)
        ch, cw = max(16, int(h * share)), max(16, int(w * share))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out.append(np.ascontiguousarray(image[top:top + ch, left:left + cw]))
    return out


import numpy as np  # noqa: E402  (after the docstring's imports list: the photo helpers above use it)


def thumbnail(image, side=THUMB):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR, reducing_gap=None))


def write_pools(work: Path, quick: bool) -> dict[str, Path]:
    """Class-folder roots (each a dataset for load_folder): flowers, weather, strangers."""
    rng = np.random.default_rng(0)
    full = unzip_once(SHARED / "flowers-full" / "flowers.zip", work / "photos" / "flowers-full")
    flowers = work / "photos" / f"flowers-{FLOWERS_PER_CLASS}"  # the first photos of each species (sorted names)
    if not flowers.is_dir():
        common.write_subset(full, flowers.with_name(flowers.name + ".partial"), FLOWERS_PER_CLASS)
        flowers.with_name(flowers.name + ".partial").rename(flowers)
    weather = unzip_once(SHARED / "weather4" / "photos.zip", work / "photos" / "weather4")
    strangers = work / "photos" / "strangers"
    if not (strangers / ".done").exists():
        sys.path.insert(0, str(common.REPO_ROOT / "scripts"))
        import make_sample_dataset as msd
        from PIL import Image
        from sklearn.datasets import load_digits

        images, labels = msd.read_fashion_mnist(common.DEFAULT_FASHION)
        for n, i in enumerate(rng.permutation(len(labels))[:200]):
            save(np.stack([images[i]] * 3, -1), strangers / "fashion" / f"fashion_{n}.png")
        digits = load_digits()
        for n, i in enumerate(rng.permutation(len(digits.target))[:100]):
            grey = (digits.images[i] * 255 / 16).astype(np.uint8)
            big = np.asarray(Image.fromarray(grey).resize((32, 32), Image.NEAREST))
            save(np.stack([255 - big] * 3, -1), strangers / "digits" / f"digit_{n}.png")
        for name, image in everyday_photos().items():
            save(image, strangers / "everyday" / f"{name}.png")
            for n, crop in enumerate(crops(image, 3, rng)):
                save(crop, strangers / "everyday" / f"{name}_crop{n}.png")
            save(thumbnail(image), strangers / "thumbs-everyday" / f"{name}.png")
        import skimage.data as sk

        faces = np.load(Path(sk.__file__).parent / "lfw_subset.npy")
        for n, face in enumerate(faces[:100]):
            grey = (np.clip(face, 0, 1) * 255).astype(np.uint8)
            save(np.stack([grey] * 3, -1), strangers / "thumbs-faces" / f"face_{n}.png")
        for source, name, classes in ((full, "flowers", FLOWERS), (weather, "weather", WEATHER)):
            for c in classes:  # photos of a set, shrunk: the thumbnails a model of the *other* set meets
                files = sorted((source / c).glob("*.jpg"))
                for f in [files[i] for i in rng.permutation(len(files))[:30]]:
                    with Image.open(f) as photo:
                        save(thumbnail(np.asarray(photo.convert("RGB"))), strangers / f"thumbs-{name}" / f"{c}_{f.stem}.png")
        (strangers / ".done").write_text("")
    return {"flowers": flowers, "weather": weather, "strangers": strangers}


def features_of(root: Path, cache, base_loader, precision: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(features (n, 1024), class folder of each photo, file name of each photo) through the product's pass."""
    from quasar_core import backbone
    from quasar_core.data import Limits, load_folder
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    dataset = load_folder(root, limits=Limits.from_env(max_images=100_000))
    weights = common.weights_path()
    spec = FeatureSpec(backbone.weights_id(weights, seed=0), IMAGE_SIZE, precision)
    network_for = network_provider(weights=weights, image_size=IMAGE_SIZE, precision=precision,
                                   base_loader=base_loader, cache=cache)
    started = time.perf_counter()
    feature_pass = FeaturePass(spec=spec, network_for=network_for, cache=cache)
    x = feature_pass.features(dataset, np.arange(len(dataset)))[0]
    if feature_pass.computed:
        print(f"  {root.name}: {feature_pass.computed} photos through VGG16 in {time.perf_counter() - started:.0f} s",
              flush=True)
    labels = [dataset.labels[t] for t in dataset.targets()]
    return x, labels, [s.name for s in dataset.samples]


def load_pools(work: Path, quick: bool, precision: str = "int8") -> dict:
    """{pool: {"x", "labels", "files"}}; kept in work/pools-<precision>.npz after the first time (reading the photos
    again to find their cached features takes minutes)."""
    from quasar_core.features.cache import FeatureCache

    kept = work / f"pools-{precision}.npz"
    if kept.is_file():
        with np.load(kept, allow_pickle=False) as z:
            names = sorted({key.split("/")[0] for key in z.files})
            return {n: {"x": z[f"{n}/x"], "labels": z[f"{n}/labels"], "files": list(z[f"{n}/files"])} for n in names}
    roots = write_pools(work, quick)
    cache = FeatureCache(work / "features", max_bytes=4 * 1024**3)
    base_loader = common.shared_base_loader()
    pools = {}
    for name, root in roots.items():
        x, labels, files = features_of(root, cache, base_loader, precision)
        pools[name] = {"x": x, "labels": np.array(labels), "files": files}
    np.savez(kept, **{f"{n}/{key}": np.asarray(value) for n, pool in pools.items() for key, value in pool.items()})
    return pools


if __name__ == "__main__" and "--pools-only" in sys.argv:
    import os

    common.weights_path()
    load_pools(Path(os.environ.get("STRANGERS_WORK", "/tmp/quasar-strangers")), quick=False)
    print("pools ready")


# --------------------------------------------------------------------------- candidate scores (--compare)
# Each candidate: fit(x, y) -> (the training photos' own out-of-fold strangeness, score(x) -> strangeness).
# Larger = stranger. The product's calibration turns either into a familiarity (an empirical p-value).


def _unit(q):
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)


def _blocks(x, parts, root=True):
    """Each block's part (block4 | block5) square-rooted and unit-normalised on its own, side by side / sqrt(parts)."""
    width = x.shape[1] // parts
    pieces = [np.sqrt(np.maximum(x[:, i * width:(i + 1) * width], 0)) if root else x[:, i * width:(i + 1) * width]
              for i in range(parts)]
    return np.concatenate([_unit(p) for p in pieces], axis=1) / np.sqrt(parts)


def knn(view, k=5, per_class=False):
    def fit(x, y):
        bank = view(x).astype(np.float32)

        def dist(q, exclude=None):
            d = 1 - view(q).astype(np.float32) @ bank.T
            if exclude is not None:
                d[np.arange(len(q)), exclude] = np.inf
            if not per_class:
                return np.partition(d, k - 1, axis=1)[:, :k].mean(1)
            out = np.full(len(q), np.inf)
            for c in np.unique(y):
                dc = d[:, y == c]
                kc = min(k, dc.shape[1] - 1)
                out = np.minimum(out, np.partition(dc, kc - 1, axis=1)[:, :kc].mean(1))
            return out

        return dist(x, exclude=np.arange(len(x))), dist
    return fit


def mahalanobis(parts, root=True, relative=False):
    """Class-conditional Mahalanobis (shared Ledoit-Wolf covariance) on each block's unit features, summed;
    `relative`: minus the distance under the whole set's own mean and covariance (Ren et al. 2021)."""
    from sklearn.covariance import ledoit_wolf

    def whiten(cov):
        ev, vec = np.linalg.eigh(cov)
        return vec / np.sqrt(np.maximum(ev, ev.max() * 1e-9))

    def parts_of(x, y):
        out = []
        width = x.shape[1] // parts
        for b in range(parts):
            xb = _blocks(x[:, b * width:(b + 1) * width], 1, root)
            classes = np.unique(y)
            means = np.stack([xb[y == c].mean(0) for c in classes])
            cov, _ = ledoit_wolf(xb - means[np.searchsorted(classes, y)], assume_centered=True)
            w = whiten(cov)
            glob = None
            if relative:
                g = xb.mean(0)
                gcov, _ = ledoit_wolf(xb - g, assume_centered=True)
                gw = whiten(gcov)
                glob = (g @ gw, gw)
            out.append((means @ w, w, glob))
        return out

    def score(fitted, q):
        total = 0
        width = q.shape[1] // parts
        for b, (centres, w, glob) in enumerate(fitted):
            qb = _blocks(q[:, b * width:(b + 1) * width], 1, root)
            z = qb @ w
            d = (z ** 2).sum(1)[:, None] - 2 * z @ centres.T + (centres ** 2).sum(1)[None]
            if glob is not None:
                g, gw = glob
                d = d - ((qb @ gw - g) ** 2).sum(1)[:, None]
            total = total + d.min(1) / qb.shape[1]
        return total

    def fit(x, y):
        oof = np.zeros(len(x))
        fold = np.random.default_rng(0).permutation(len(x)) % 5
        for f in range(5):
            oof[fold == f] = score(parts_of(x[fold != f], y[fold != f]), x[fold == f])
        fitted = parts_of(x, y)
        return oof, lambda q: score(fitted, q)
    return fit


def energy():
    """-logsumexp of the head's logits (the product's head: rooted, standardised softmax regression)."""
    from quasar_core.head import fit_head

    def head_score(h, q):
        z = h.logits(q)
        m = z.max(1, keepdims=True)
        return -(m[:, 0] + np.log(np.exp(z - m).sum(1)))

    def fit(x, y):
        n_classes = int(y.max()) + 1
        oof = np.zeros(len(x))
        fold = np.random.default_rng(0).permutation(len(x)) % 5
        for f in range(5):
            h = fit_head(x[fold != f], y[fold != f], n_classes=n_classes, strength=1.0)
            oof[fold == f] = head_score(h, x[fold == f])
        h = fit_head(x, y, n_classes=n_classes, strength=1.0)
        return oof, lambda q: head_score(h, q)
    return fit


def combined(*fits):
    """The smallest of the members' familiarities (each calibrated on its own out-of-fold scores)."""
    def fit(x, y):
        members = [f(x, y) for f in fits]
        cals = [np.sort(oof) for oof, _ in members]

        def p(cal, s):
            return (len(cal) - np.searchsorted(cal, s, side="left")) / len(cal)

        oof = -np.min([p(c, o) for c, (o, _) in zip(cals, members)], axis=0)
        return oof, lambda q: -np.min([p(c, fn(q)) for c, (_, fn) in zip(cals, members)], axis=0)
    return fit


def candidates():
    block5 = lambda x: _unit(np.sqrt(np.maximum(x[:, 512:], 0)))  # noqa: E731  (the engine before today)
    whole = lambda x: _unit(np.sqrt(np.maximum(x, 0)))  # noqa: E731  (today: 1,024 as one vector)
    blocks = lambda x: _blocks(x, 2)  # noqa: E731
    return {
        "kNN k=5, block5 only (512)": knn(block5),
        "kNN k=5, 1,024 as one vector": knn(whole),
        "kNN k=5, per block": knn(blocks),
        "kNN k=10, per block": knn(blocks, k=10),
        "kNN k=5, per block, nearest class": knn(blocks, per_class=True),
        "Mahalanobis per block (LW)": mahalanobis(2),
        "relative Mahalanobis per block": mahalanobis(2, relative=True),  # its background = the training photos
        "energy (the head)": energy(),
        "kNN per block + Mahalanobis": combined(knn(blocks), mahalanobis(2)),
        "kNN per block + relative Mahalanobis": combined(knn(blocks), mahalanobis(2, relative=True)),
        "kNN per block + energy": combined(knn(blocks), energy()),
    }


# --------------------------------------------------------------------------- the measurement


def stranger_kinds(pools, model_set: str, classes, rng, cap: int) -> dict[str, dict[str, np.ndarray]]:
    """{kind: {sub-kind: features}} of photos of other things for a model of `classes` of `model_set`."""
    s = pools["strangers"]
    other = "weather" if model_set == "flowers" else "flowers"

    def pick(x):
        return x[rng.permutation(len(x))[:cap]]

    def sub(name):
        return pick(s["x"][s["labels"] == name])

    own = pools[model_set]
    near = {c: pick(own["x"][own["labels"] == c]) for c in sorted(set(own["labels"]) - set(classes))}
    return {
        "other domain": {"clothes (Fashion-MNIST)": sub("fashion"), "digits (sklearn)": sub("digits"),
                         f"{other} photos": pick(pools[other]["x"])},
        "near domain": near,
        "thumbnails": {"everyday at 32 px": sub("thumbs-everyday"), "faces at 25 px": sub("thumbs-faces"),
                       f"{other} at 32 px": sub(f"thumbs-{other}")},
        "everyday": {"everyday photos and crops": sub("everyday")},
    }


def split(pools, model_set, classes, per_class, seed):
    own = pools[model_set]
    rng = np.random.default_rng([seed, 11])
    train, unseen = [], []
    for c in classes:
        rows = rng.permutation(np.flatnonzero(own["labels"] == c))
        train.append(rows[:per_class])
        unseen.append(rows[per_class:])
    train, unseen = np.concatenate(train), np.concatenate(unseen)
    y = np.searchsorted(np.array(sorted(classes)), own["labels"][train])
    return own["x"][train], y, own["x"][unseen]


def product_verdicts(x, y, **options):
    """(verdicts(q) -> (unknown, unusual), the fitted model): the engine's FamiliarityModel as training fits it."""
    from quasar_core.familiarity import FamiliarityModel

    model = FamiliarityModel(**options).fit(x, y)
    return (lambda q: (model.is_unknown(q), model.is_unusual(q))), model


def candidate_verdicts(fit, x, y, familiar_share, unusual_share):
    oof, score = fit(x, y)
    cal = np.sort(oof)

    def verdicts(q):
        fam = (len(cal) - np.searchsorted(cal, score(q), side="left")) / len(cal)
        unknown = fam < 1 - familiar_share - 1e-9
        return unknown, ~unknown & (fam < unusual_share - 1e-9)
    return verdicts


def measure(verdicts, unseen, kinds) -> dict:
    u, v = verdicts(unseen)
    out = {"own unseen": {"photos": len(unseen), "unknown": float(u.mean()), "unusual": float(v.mean())}, "kinds": {}}
    for kind, subs in kinds.items():
        rows = {}
        for name, q in subs.items():
            if len(q):
                u, v = verdicts(q)
                rows[name] = {"photos": len(q), "unknown": float(u.mean()), "unusual": float(v.mean()),
                              "either": float((u | v).mean())}
        if rows:
            out["kinds"][kind] = {"subkinds": rows, **{key: float(np.mean([r[key] for r in rows.values()]))
                                                       for key in ("unknown", "unusual", "either")}}
    kinds_either = [k["either"] for k in out["kinds"].values()]
    out["others either"] = float(np.mean(kinds_either))  # each kind weighs the same (~20 photos of each)
    out["worst kind"] = float(np.min(kinds_either))
    return out


def average(results: list[dict]) -> dict:
    """Mean over splits (and the worst split for the own unknown share and the others' overall share)."""
    first = results[0]
    avg = {"own unseen": {k: float(np.mean([r["own unseen"][k] for r in results])) for k in ("unknown", "unusual")},
           "own unknown worst": float(np.max([r["own unseen"]["unknown"] for r in results])),
           "others either": float(np.mean([r["others either"] for r in results])),
           "others either worst": float(np.min([r["others either"] for r in results])),
           "kinds": {}}
    for kind, entry in first["kinds"].items():
        avg["kinds"][kind] = {key: float(np.mean([r["kinds"][kind][key] for r in results]))
                              for key in ("unknown", "unusual", "either")}
        avg["kinds"][kind]["subkinds"] = {
            name: {key: float(np.mean([r["kinds"][kind]["subkinds"][name][key] for r in results]))
                   for key in ("unknown", "unusual", "either")} | {"photos": sub["photos"]}
            for name, sub in entry["subkinds"].items()}
    avg["worst kind"] = float(min(k["either"] for k in avg["kinds"].values()))
    return avg


def pct(value) -> str:
    return f"{100 * value:5.1f}"


def run_models(pools, verdicts_for, args) -> dict:
    """{model name: averaged measure over the splits} for verdicts_for(x, y) -> verdicts(q)."""
    out = {}
    for name, (model_set, classes, per_class) in MODELS.items():
        results = []
        for seed in range(args.splits):
            x, y, unseen = split(pools, model_set, classes, per_class, seed)
            kinds = stranger_kinds(pools, model_set, classes, np.random.default_rng([seed, 5]), args.per_kind)
            results.append(measure(verdicts_for(x, y), unseen, kinds))
        out[name] = average(results) | {"train_photos": len(y), "own_unseen_photos": len(unseen)}
    return out


def print_product(results: dict) -> None:
    for name, r in results.items():
        own = r["own unseen"]
        print(f"\n[{name}] {r['train_photos']} photos learned from, {r['own_unseen_photos']} unseen of its own "
              f"(mean of the splits)")
        print(f"  {'':38} {'unknown':>8} {'unusual':>8} {'either':>8}")
        print(f"  {'own unseen (target unknown <= 5 %)':38} {pct(own['unknown']):>8} {pct(own['unusual']):>8} "
              f"{pct(own['unknown'] + own['unusual']):>8}   worst split unknown {pct(r['own unknown worst'])}")
        for kind, entry in r["kinds"].items():
            print(f"  {kind:38} {pct(entry['unknown']):>8} {pct(entry['unusual']):>8} {pct(entry['either']):>8}")
            for sub, e in entry["subkinds"].items():
                label = f"{sub} ({e['photos']})"
                print(f"    {label:36} {pct(e['unknown']):>8} {pct(e['unusual']):>8} "
                      f"{pct(e['either']):>8}")
        print(f"  {'other things, each kind alike (>= 95 %)':38} {'':>8} {'':>8} {pct(r['others either']):>8}   "
              f"worst split {pct(r['others either worst'])}, worst kind {pct(r['worst kind'])}")


def compare_header(names) -> None:
    print("\nCandidates (mean of the splits; own = own unseen unknown / unusual; others = unknown or unusual, "
          "each kind alike; worst = its weakest kind; near = near domain)")
    print(f"{'score':36}" + "".join(f" | {n[:30]:30}" for n in names))
    print(f"{'':36}" + " | own unk/unu  others worst near" * len(names))


def compare_row(method: str, per_model: dict) -> None:
    cells = []
    for r in per_model.values():
        near = r["kinds"].get("near domain", {}).get("either")
        cells.append(f" | {pct(r['own unseen']['unknown'])}/{pct(r['own unseen']['unusual'])} "
                     f"{pct(r['others either'])} {pct(r['worst kind'])} {pct(near) if near is not None else '   - '}")
    print(f"{method[:36]:36}" + "".join(cells), flush=True)


def doctor_outliers(pools, args, trials: int = 20, per_class: int = 50) -> dict:
    """The doctor (doctor.diagnose, as *Check my photos* runs it) on `per_class` flowers of each species with 4
    planted photos of other things, one to a class in turn: how many of the 4 are among the first 8 outliers
    listed, and how many photos are listed. Two plantings: real photos (weather, everyday objects) and
    Fashion-MNIST clothes (alike among themselves: each other's nearest neighbours)."""
    from quasar_core.photo_findings import diagnose

    flowers, s = pools["flowers"], pools["strangers"]
    plantings = {"real photos of other things": np.concatenate([pools["weather"]["x"], s["x"][s["labels"] == "everyday"]]),
                 "Fashion-MNIST clothes": s["x"][s["labels"] == "fashion"]}
    out = {}
    for planting, pool in plantings.items():
        rows = []
        for trial in range(args.splits if args.quick else trials):
            rng = np.random.default_rng([trial, 31])
            chosen = np.concatenate([rng.permutation(np.flatnonzero(flowers["labels"] == c))[:per_class]
                                     for c in FLOWERS])
            planted = pool[rng.permutation(len(pool))[:4]]
            x = np.concatenate([flowers["x"][chosen], planted])
            y = np.concatenate([np.searchsorted(FLOWERS, flowers["labels"][chosen]), np.arange(4) % len(FLOWERS)])
            files = [f"photo_{i}" for i in range(len(chosen))] + [f"planted_{j}" for j in range(4)]
            report = diagnose(x, y, class_names=list(FLOWERS), files=files, seed=trial)
            listed = [o.file for o in report.outliers]
            rows.append({"in_first_8": sum(f.startswith("planted") for f in listed[:8]), "listed": len(listed),
                         "ranks": [r for r, f in enumerate(listed, 1) if f.startswith("planted")]})
        out[planting] = {"trials": rows, "mean_in_first_8": float(np.mean([r["in_first_8"] for r in rows])),
                         "share_3_of_4": float(np.mean([r["in_first_8"] >= 3 for r in rows])),
                         "listed_median": float(np.median([r["listed"] for r in rows]))}
        print(f"\n[doctor] {len(FLOWERS) * per_class} flowers + 4 planted {planting}, {len(rows)} trials: "
              f"{out[planting]['mean_in_first_8']:.2f} of 4 among the first 8 outliers on average; >= 3 of 4 in "
              f"{100 * out[planting]['share_3_of_4']:.0f} % of trials; photos listed: median "
              f"{out[planting]['listed_median']:.0f} (per trial {[r['listed'] for r in rows]})")
    return out


def compare_all(pools, results, args, unusual_below) -> None:
    for method, fit in candidates().items():
        if args.only and args.only.lower() not in method.lower():
            continue
        watch = time.perf_counter()
        results["candidates"][method] = run_models(
            pools, lambda x, y: candidate_verdicts(fit, x, y, 0.975, unusual_below), args)
        compare_row(method, results["candidates"][method])
        print(f"  ({method}: {time.perf_counter() - watch:.0f} s)", flush=True)


def main(argv=None) -> int:
    import os

    p = common.parser(__doc__)
    p.add_argument("--work", default=os.environ.get("STRANGERS_WORK", "/tmp/quasar-strangers"),
                   help="photos and the feature cache, kept between runs (default %(default)s)")
    p.add_argument("--splits", type=int, default=5, help="seeded splits per model (default %(default)s)")
    p.add_argument("--per-kind", type=int, default=200, help="most photos of one sub-kind (default %(default)s)")
    p.add_argument("--compare", action="store_true", help="also measure the candidate scores")
    p.add_argument("--only", default="", help="with --compare: the candidates whose name holds this text")
    p.add_argument("--doctor", action="store_true", help="also the doctor's outliers with planted strangers")
    p.add_argument("--unusual-below", type=float, default=None, help="default: the engine's")
    args = p.parse_args(argv)
    if args.quick:
        args.splits = 1
    started, info = common.begin(args)
    from quasar_core.familiarity import UNUSUAL_BELOW

    unusual_below = args.unusual_below or UNUSUAL_BELOW
    pools = load_pools(Path(args.work), args.quick)
    results = {"machine": info, "image_size": IMAGE_SIZE, "unusual_below": unusual_below}
    results["product"] = run_models(pools, lambda x, y: product_verdicts(x, y, unusual_below=unusual_below)[0], args)
    print_product(results["product"])
    if args.compare:
        results["candidates"] = {}
        compare_header(list(MODELS))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # small matrices: BLAS threads only fight on busy cores
            compare_all(pools, results, args, unusual_below)
    if args.doctor:
        results["doctor"] = doctor_outliers(pools, args)
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal run time of bench_strangers.py: {results['total_seconds']:.0f} s")
    print(f"results: {common.write_results('bench_strangers', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
