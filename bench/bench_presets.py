"""The presets on real photos at their own size: the default and Best against a plain linear probe on
block5 features (and, given an older checkout, that checkout's default and Best): unseen accuracy with
counts, and each arm's whole `quasar train` process (wall time, peak RSS).

    python bench/bench_presets.py [--sets flowers,weather] [--train-per-class 40,30] [--unseen 1000]
                                  [--arms default,best] [--old-root DIR] [--old-arms default,best]
                                  [--seed 0] [--quick]

For each real-photo set (flowers-full, weather4: unpacked from ../shared/datasets, never copied into the
repo), one seeded split: per class `--train-per-class` photos to learn from and up to `--unseen` other
photos in all (stratified) unseen. Each arm is its own `python -m quasar_core train` process with a fresh
feature cache and int8 models already built (every later training on a machine): `default` is no
--preset at all, `best` is --preset best. Unseen accuracy: `quasar evaluate RUN UNSEEN --json` in the
arm's own checkout (`--old-root`: a checkout of an earlier commit, e.g. `git worktree add /tmp/old
e0d8051`, whose `quasar train` without flags was Quick look). The probe is scikit-learn's
LogisticRegression() with its defaults on the raw block5_pool averages (the engine's features before
today) of the same training photos, int8 at 224 px, scored on the same unseen photos.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

ARMS = {"default": [], "best": ["--preset", "best"], "quick": ["--preset", "quick"]}


def split(name: str, root: Path, train_per_class: int, unseen: int, seed: int) -> tuple[Path, Path]:
    """Train and unseen folders (symlinks); the unseen share of each class in proportion to its photos."""
    source = common.photos_dir(name)
    total = sum(common.count_photos(folder) for folder in source.iterdir() if folder.is_dir())
    classes = sum(1 for folder in source.iterdir() if folder.is_dir())
    share = min(1.0, unseen / max(total - classes * train_per_class, 1))
    train, test = common.write_flowers_sets(root, train_per_class=train_per_class, test_per_class=None, seed=seed,
                                            name=name)
    import numpy as np

    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in test.iterdir() if p.is_dir()):  # thin the unseen photos to `unseen`
        files = sorted(folder.iterdir())
        for file in rng.permutation(files)[int(round(share * len(files))):]:
            Path(file).unlink()
    return train, test


def train_and_evaluate(checkout: Path, arm: str, train: Path, test: Path, work: Path, label: str, args) -> dict:
    run = work / f"run-{label}"
    cache = work / f"cache-{label}"
    # int8 models go beside the cache (work/int8-models): built by the first arm of a checkout, reused after
    env = common.child_env(QUASAR_CACHE_DIR=cache, PYTHONPATH=checkout)
    trained = common.run_process([sys.executable, "-m", "quasar_core", "train", str(train), "--out", str(run),
                                  *ARMS[arm]], env=env, cwd=checkout, log=work / f"train-{label}.log")
    evaluated = common.run_process([sys.executable, "-m", "quasar_core", "evaluate", str(run), str(test), "--json"],
                                   env=env, cwd=checkout, log=work / f"evaluate-{label}.log")
    del evaluated  # its JSON line (every photo's answer) is read from the whole log
    line = next(line for line in (work / f"evaluate-{label}.log").read_text(errors="replace").splitlines()[::-1]
                if line.startswith('{"accuracy"'))
    metrics = json.loads(line)
    config = json.loads((run / "config.json").read_text())
    reported = json.loads((run / "metrics.json").read_text())
    return {"arm": arm, "wall": trained["wall"], "peak_rss_mb": trained["peak_rss_mb"],
            "others_share": trained["others_share"], "unseen_accuracy": metrics["accuracy"],
            "unseen_photos": len(metrics["predictions"]),
            "reported": reported["accuracy"], "reported_interval": reported.get("accuracy_interval"),
            "image_size": config["image_size"], "augment": config.get("augment")}


def probe(train: Path, test: Path, cache_dir: Path) -> dict:
    """LogisticRegression() on raw block5 averages (the last 512 of the engine's pooled features)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from quasar_core import backbone
    from quasar_core.data import Limits, load_folder
    from quasar_core.features.cache import FeatureCache, FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    weights = common.weights_path()
    cache = FeatureCache(cache_dir)
    spec = FeatureSpec(backbone.weights_id(weights), 224, "int8")
    network_for = network_provider(weights=weights, image_size=224, precision="int8",
                                   base_loader=common.shared_base_loader(), cache=cache)
    parts = []
    for folder in (train, test):
        dataset = load_folder(folder, limits=Limits.from_env(max_images=100_000))
        features = FeaturePass(spec=spec, network_for=network_for, cache=cache).features(
            dataset, np.arange(len(dataset)))[0]
        parts.append((features[:, -512:], dataset.targets()))
    (x, y), (x_test, y_test) = parts
    model = LogisticRegression(max_iter=1000).fit(x, y)
    right = int((model.predict(x_test) == y_test).sum())
    return {"arm": "probe", "unseen_accuracy": right / len(y_test), "unseen_photos": len(y_test)}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--sets", default="flowers,weather")
    p.add_argument("--train-per-class", default="40,30", help="per set, in --sets' order")
    p.add_argument("--unseen", type=int, default=1000)
    p.add_argument("--arms", default="default,best")
    p.add_argument("--old-root", default=None, help="a checkout of an earlier commit to measure beside")
    p.add_argument("--old-arms", default="default,best")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    common.begin(args)
    sets = args.sets.split(",")
    per_class = [int(v) for v in args.train_per_class.split(",")]
    per_class += per_class[-1:] * (len(sets) - len(per_class))
    if args.quick:
        per_class, args.unseen = [5] * len(sets), 40
    results = []
    for name, count in zip(sets, per_class):
        with common.work_dir(args, f"quasar-presets-{name}-") as work:
            train, test = split(name, work / "photos", count, args.unseen, args.seed)
            print(f"\n{name}: {common.count_photos(train)} photos to learn from, {common.count_photos(test)} unseen")
            rows = [probe(train, test, work / "probe-cache")]
            checkouts = [(common.REPO_ROOT, arm, arm) for arm in args.arms.split(",") if arm]  # --arms "": none
            if args.old_root:
                checkouts += [(Path(args.old_root), arm, f"old {arm}") for arm in args.old_arms.split(",") if arm]
            for checkout, arm, label in checkouts:
                common.quiet(args)
                row = train_and_evaluate(checkout, arm, train, test, work, label.replace(" ", "-"), args)
                rows.append({**row, "arm": label})
            for row in rows:
                line = f"  {row['arm']:<12} unseen {row['unseen_accuracy'] * 100:5.1f} % of {row['unseen_photos']}"
                if "wall" in row:
                    line += (f"   reported {row['reported'] * 100:5.1f} %   {row['image_size']} px"
                             f"{' + augmented' if row['augment'] else ''}   whole process {row['wall']:6.1f} s, "
                             f"peak {row['peak_rss_mb']:5.0f} MB (others {row['others_share'] * 100:.0f} % of CPU)")
                print(line, flush=True)
            results.append({"set": name, "train_per_class": count, "rows": rows})
    out = common.RESULTS_DIR / f"presets{'.quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1))
    print(f"\n(wrote {out})")


if __name__ == "__main__":
    main()
