"""Label assist, simulated on real photos: does asking about the photos the strategy picks beat random ones?

    python bench/bench_label_assist.py [--sets flowers-full,weather4] [--seeds 10]
                                       [--strategies margin-kmeans,random] [--start 10] [--rounds 5] [--batch 20]
                                       [--no-timing] [--timing-only] [--quick]

Every photo of flowers-full (3,666) and weather4 (942) goes once through the product's own FeaturePass (int8,
224 px, a FeatureCache under /tmp/quasar-label-assist); the features are kept there as .npz, so seeds cost
nothing. Then per set and seed: 30 % of the photos (stratified) are held out as unseen, 10 photos a class
are labelled to start, and each arm runs `--rounds` rounds of `--batch`: a LabelAssistant (the engine's own:
its head, folds, calibration, familiarity) learns from the labelled photos, its accuracy on the unseen
photos is recorded, then the arm picks the next batch from the rest and the oracle (the true labels) labels
them. `random` picks a seeded random batch; every other arm is LabelAssistant.suggest with that strategy.
Printed: the mean unseen accuracy per round and arm, each seed's curves, the Done-when comparisons (at every
round >= random; at 110 labels >= 2 points above random, or random's 110-label accuracy reached with at most
70 % of the labels), and, for the default strategy after round 1, the confident band over every photo not
labelled (the rest of the pool and the unseen ones): coverage, the share of its pre-labels right, the stated
rate.

Timing (a child process each, so peak memory is the process's own): 150 labelled flowers photos and a pool of
500 or 5,000 photos (flowers features with a little noise, so none repeats) stored in a FeatureCache, read
back through FeaturePass (never computed), LabelAssistant.fit, then suggest: seconds and peak RSS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SHARED = Path("/work/shared/datasets")
SETS = {"flowers-full": SHARED / "flowers-full" / "flowers.zip", "weather4": SHARED / "weather4" / "photos.zip"}
FEATURES_DIR = Path("/tmp/quasar-label-assist")
UNSEEN_SHARE = 0.3


def set_features(name: str, *, image_size: int = 224, precision: str = "int8"):
    """(features (n, 1024) float32, targets (n,), labels) of every photo of a set, through the product's own
    FeaturePass (int8 at 224 px by default); kept as .npz in FEATURES_DIR, so seeds cost nothing."""
    import numpy as np

    saved = FEATURES_DIR / f"{name}-{image_size}-{precision}.npz"
    if saved.is_file():
        with np.load(saved, allow_pickle=False) as data:
            return data["features"], data["targets"], [str(x) for x in data["labels"]]
    from quasar_core import backbone
    from quasar_core.data import Limits, load_zip
    from quasar_core.features.cache import FeatureCache, FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    weights = common.weights_path()
    cache = FeatureCache(FEATURES_DIR / "cache", max_bytes=4 * 1024**3)
    dataset = load_zip(SETS[name], limits=Limits.from_env(max_images=100_000))
    spec = FeatureSpec(backbone.weights_id(weights, seed=0), image_size, precision)
    network_for = network_provider(weights=weights, image_size=image_size, precision=precision,
                                   base_loader=common.shared_base_loader(), cache=cache)
    started = time.perf_counter()
    features = FeaturePass(spec=spec, network_for=network_for, cache=cache).features(dataset, np.arange(len(dataset)))[0]
    print(f"{name}: {len(dataset)} photos through VGG16 ({precision}, {image_size} px) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    saved.parent.mkdir(parents=True, exist_ok=True)
    np.savez(saved, features=features.astype(np.float32), targets=dataset.targets(), labels=np.array(dataset.labels))
    return features, dataset.targets(), list(dataset.labels)


# --------------------------------------------------------------------------- the simulation
def split(y, seed: int, start: int):
    """(unseen, pool, labelled at the start): UNSEEN_SHARE of each class held out, `start` a class labelled."""
    import numpy as np

    rng = np.random.default_rng([seed, 30])
    unseen = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: int(round(UNSEEN_SHARE * (y == c).sum()))]
                                     for c in np.unique(y)]))
    pool = np.setdiff1d(np.arange(len(y)), unseen)
    first = np.concatenate([rng.permutation(pool[y[pool] == c])[:start] for c in np.unique(y)])
    return unseen, pool, first


def one_seed(x, y, seed: int, arm: str, args) -> dict:
    import numpy as np

    from quasar_core.label_assist import LabelAssistant

    unseen, pool, labelled = split(y, seed, args.start)
    labelled = [int(i) for i in labelled]
    original = set(labelled)
    rng = np.random.default_rng([seed, 31])
    row = {"seed": seed, "arm": arm, "labels": [], "unseen_accuracy": [], "seconds": []}
    strategy = "margin-kmeans" if arm == "random" else arm
    for number in range(args.rounds + 1):
        started = time.perf_counter()
        tested = np.array([i in original for i in labelled])
        assistant = LabelAssistant(count=args.batch, strategy=strategy, seed=seed).fit(
            x[labelled], y[labelled], n_classes=int(y.max()) + 1, tested=tested)
        row["labels"].append(len(labelled))
        row["unseen_accuracy"].append(float((assistant.head_.probabilities(x[unseen]).argmax(1) == y[unseen]).mean()))
        rest = np.setdiff1d(pool, labelled)
        if number == 1 and arm in (args.strategies[0], "random"):
            row["band"] = band_numbers(assistant, x, y, np.setdiff1d(np.arange(len(y)), labelled))
        if number < args.rounds:
            if arm == "random":
                picks = rng.permutation(rest)[: args.batch]
            else:
                picks = rest[[s.position for s in assistant.suggest(x[rest]).next]]
            labelled += [int(i) for i in picks]
        row["seconds"].append(time.perf_counter() - started)
    return row


def band_numbers(assistant, x, y, unlabelled) -> dict:
    found = assistant.suggest(x[unlabelled])
    members = [s.position for s in found.confident]
    right = [int(s.suggested) == y[unlabelled][s.position] for s in found.confident]
    return {"coverage": found.coverage, "photos": len(members), "unlabelled": len(unlabelled),
            "right": float(sum(right) / len(right)) if right else None,
            "stated_right": None if found.band is None else 1 - found.band.stated_error,
            "prelabels_right": float(sum(s.suggested == str(y[unlabelled][s.position]) for s in found.next + found.confident)
                                     / max(1, len(found.next) + len(found.confident)))}


def summarise(rows: list[dict], arms: list[str], args) -> dict:
    import numpy as np

    out = {}
    for arm in arms:
        curves = np.array([r["unseen_accuracy"] for r in rows if r["arm"] == arm])
        out[arm] = {"labels": rows[0]["labels"], "mean": curves.mean(0).tolist(), "sd": curves.std(0).tolist(),
                    "seconds_per_round": float(np.mean([np.mean(r["seconds"]) for r in rows if r["arm"] == arm]))}
    return out


def at_labels(labels, curve, n: float) -> float:
    import numpy as np

    return float(np.interp(n, labels, curve))


def labels_to_reach(labels, curve, target: float) -> float | None:
    """The (interpolated) labels at which `curve` first reaches `target`; None if it never does."""
    for i in range(len(labels)):
        if curve[i] >= target:
            if i == 0:
                return float(labels[0])
            a, b = curve[i - 1], curve[i]
            return float(labels[i - 1] + (labels[i] - labels[i - 1]) * (target - a) / max(b - a, 1e-12))
    return None


def simulate(name: str, args) -> dict:
    import numpy as np

    x, y, labels = set_features(name)
    print(f"\n== {name}: {len(y)} photos, {len(labels)} classes ({', '.join(labels)}); {args.seeds} seeds, start "
          f"{args.start} a class, {args.rounds} rounds of {args.batch}", flush=True)
    rows = []
    for seed in range(args.seeds):
        for arm in args.strategies:
            rows.append(one_seed(x, y, seed, arm, args))
        print(f"  seed {seed}: " + "; ".join(
            f"{r['arm']} " + " ".join(f"{a * 100:.1f}" for a in r["unseen_accuracy"]) for r in rows[-len(args.strategies):]),
            flush=True)
    summary = summarise(rows, args.strategies, args)
    counts = summary[args.strategies[0]]["labels"]
    print(f"\n  mean unseen accuracy (sd) at {counts} labels:")
    for arm in args.strategies:
        s = summary[arm]
        print(f"    {arm:15s} " + "  ".join(f"{m * 100:5.1f} ({d * 100:.1f})" for m, d in zip(s["mean"], s["sd"]))
              + f"   [{s['seconds_per_round']:.1f} s a round]")
    result = {"set": name, "photos": int(len(y)), "labels": labels, "rows": rows, "summary": summary}
    if "random" in args.strategies:
        base = summary["random"]["mean"]
        for arm in args.strategies:
            if arm == "random":
                continue
            curve = summary[arm]["mean"]
            paired = np.array([[a - b for a, b in zip(r["unseen_accuracy"], q["unseen_accuracy"])]
                               for r in rows if r["arm"] == arm for q in rows if q["arm"] == "random"
                               and q["seed"] == r["seed"]])
            target = at_labels(counts, base, 110)
            reach = labels_to_reach(counts, curve, target)
            verdict = {"at_every_round": bool(all(c >= b - 1e-12 for c, b in zip(curve, base))),
                       "gain_at_110_points": 100 * (at_labels(counts, curve, 110) - target),
                       "labels_to_reach_random_110": reach,
                       "share_of_labels": None if reach is None else reach / 110,
                       "paired_gain_points": (paired.mean(0) * 100).tolist(),
                       "paired_se_points": (paired.std(0, ddof=1) / np.sqrt(len(paired)) * 100).tolist()}
            verdict["met"] = verdict["at_every_round"] and (verdict["gain_at_110_points"] >= 2 or (
                reach is not None and reach <= 0.7 * 110))
            result.setdefault("verdict", {})[arm] = verdict
            print(f"  {arm} vs random: >= at every round: {verdict['at_every_round']}; at 110 labels "
                  f"{verdict['gain_at_110_points']:+.1f} points; random's 110-label accuracy reached at "
                  f"{common.fmt(reach, '.0f')} labels ({common.fmt(verdict['share_of_labels'], '.0%')}); paired gain per "
                  f"round " + " ".join(f"{g:+.1f}±{e:.1f}" for g, e in zip(verdict["paired_gain_points"],
                                                                        verdict["paired_se_points"]))
                  + f" -> {'met' if verdict['met'] else 'MISSED'}")
    bands = [r["band"] for r in rows if r.get("band") and r["arm"] == args.strategies[0]]
    if bands:
        right = [b["right"] for b in bands if b["right"] is not None]
        stated = [b["stated_right"] for b in bands if b["stated_right"] is not None]
        result["band"] = {"coverage_mean": float(np.mean([b["coverage"] for b in bands])),
                          "coverage_min": float(np.min([b["coverage"] for b in bands])),
                          "right_mean": float(np.mean(right)) if right else None,
                          "right_min": float(np.min(right)) if right else None,
                          "stated_right_mean": float(np.mean(stated)) if stated else None,
                          "seeds_right_at_least_stated": int(sum(b["right"] is not None and b["stated_right"] is not None
                                                                 and b["right"] >= b["stated_right"] for b in bands)),
                          "seeds": len(bands)}
        band = result["band"]
        print(f"  confident band after round 1 ({args.strategies[0]}): covers {band['coverage_mean']:.1%} of the "
              f"unlabelled photos (min {band['coverage_min']:.1%}); right {common.fmt(band['right_mean'], '.1%')} "
              f"(min {common.fmt(band['right_min'], '.1%')}); stated {common.fmt(band['stated_right_mean'], '.1%')} "
              f"right; right >= stated in {band['seeds_right_at_least_stated']} of {band['seeds']} seeds")
    return result


# --------------------------------------------------------------------------- timing and memory
def pool_photos(size: int, folder: Path):
    """(samples, cache, config, labelled, x, y): 150 labelled flowers photos and a pool of `size` photos (flowers
    features with a little noise, so none repeats) whose features are in a FeatureCache under `folder`."""
    import numpy as np

    from quasar_core import backbone
    from quasar_core.config import TrainConfig
    from quasar_core.data.records import Sample
    from quasar_core.features.cache import FeatureCache, FeatureSpec

    x, y, _ = set_features("flowers-full")
    rng = np.random.default_rng(5)
    labelled = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:30] for c in np.unique(y)])
    config = TrainConfig(weights=common.weights_path(), image_size=224)
    cache = FeatureCache(Path(folder) / f"pool-{size}", max_bytes=4 * 1024**3)
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, "int8")
    samples = [Sample(f"photo_{i:05d}.jpg", "", (320, 240), f"digest-{size}-{i}") for i in range(size)]
    if not cache.has(samples[-1].digest, spec):
        picks = rng.choice(np.setdiff1d(np.arange(len(y)), labelled), size, replace=size > len(y) - len(labelled))
        pool = np.abs(x[picks] + rng.normal(0, 0.01, (size, x.shape[1])).astype(np.float32))
        for sample, row in zip(samples, pool):
            cache.put(sample.digest, spec, row)
    return samples, cache, config, labelled, x, y


def child(args) -> None:
    """--child N: the pool's features already cached (by the parent): the model learns from 150 labelled photos,
    the N photos are read back (never computed), suggest; seconds (suggesting three times: first and median)
    and peak RSS."""
    import numpy as np

    from quasar_core.data.records import DataReport, Dataset
    from quasar_core.label_assist import LabelAssistant, photo_features

    size = int(args.child)
    samples, cache, config, labelled, x, y = pool_photos(size, Path(args.tmp_cache))
    common.reset_peak_rss()
    before = common.peak_rss_mb()

    def never(*_):
        raise RuntimeError("a cached feature was computed again")

    # As the Label more page does it (use.labelling_round): the model learns, then the photos are read, then suggest.
    started = time.perf_counter()
    assistant = LabelAssistant(seed=0).fit(x[labelled], y[labelled])
    fitted = time.perf_counter() - started
    passes, cpu, peak = [], [], None
    for _ in range(3):
        started, cpu_started = time.perf_counter(), common.own_cpu_seconds()
        features = photo_features(Dataset(samples, [], DataReport("pool")), config, "int8", cache=cache,
                                  base_loader=never)
        read = time.perf_counter() - started
        found = assistant.suggest(features, files=[s.name for s in samples])
        passes.append((read, time.perf_counter() - started - read))
        cpu.append(common.own_cpu_seconds() - cpu_started)
        peak = peak or common.peak_rss_mb()  # the first pass's: later ones only add the allocator's leftovers
        del features
    read, suggested = passes[0]
    out = {"pool": size, "read_seconds": read, "fit_seconds": fitted, "suggest_seconds": suggested,
           "total_seconds": read + fitted + suggested, "rss_before_mb": before, "peak_rss_mb": peak,
           "median_read_and_suggest_seconds": float(np.median([r + s for r, s in passes])),
           "median_read_and_suggest_cpu_seconds": float(np.median(cpu)),
           "next": len(found.next), "confident": len(found.confident)}
    Path(args.out).write_text(json.dumps(out))


def timing(args) -> dict:
    results = {}
    with common.work_dir(args, "quasar-label-timing-") as folder:
        for size in (500, 5000):
            pool_photos(size, folder)  # cached here first: the measured child only reads them
            common.quiet(args)
            results[size] = common.run_child(Path(__file__), str(size), "--tmp-cache", str(folder))
            r = results[size]
            print(f"  pool {size:5d}: read {r['read_seconds']:.2f} s, fit {r['fit_seconds']:.2f} s, suggest "
                  f"{r['suggest_seconds']:.2f} s (total {r['total_seconds']:.2f} s; read + suggest, median of 3: "
                  f"{r['median_read_and_suggest_seconds']:.2f} s, {r['median_read_and_suggest_cpu_seconds']:.2f} CPU s); "
                  f"RSS before {r['rss_before_mb']:.0f} MB, "
                  f"peak {r['peak_rss_mb']:.0f} MB (process peak {r['process']['peak_rss_mb']:.0f} MB)", flush=True)
    growth = results[5000]["peak_rss_mb"] / results[500]["peak_rss_mb"] - 1  # from the measured part on
    suggesting = results[5000]["median_read_and_suggest_seconds"]
    print(f"  suggesting for 5,000 cached photos (read + suggest, median of 3): {suggesting:.2f} s "
          f"({common.verdict(suggesting, at_most=5)} <= 5 s; CPU {results[5000]['median_read_and_suggest_cpu_seconds']:.2f} s, "
          f"others used {results[5000]['process']['others_share']:.0%} of the CPU); with the model's fit on 150 labelled photos "
          f"{results[5000]['total_seconds']:.2f} s; peak memory 500 -> 5,000: "
          f"{growth:+.1%} ({common.verdict(growth, at_most=0.2)} <= +20 %)")
    return {"runs": results, "peak_growth": growth, "suggest_seconds_5000": suggesting}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--sets", default="flowers-full,weather4")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--strategies", default="margin-kmeans,random",
                   help="arms, the first is the one the band is measured for (default: %(default)s)")
    p.add_argument("--start", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--timing-only", action="store_true")
    p.add_argument("--child", default=None, help=argparse_hidden())
    p.add_argument("--out", default=None, help=argparse_hidden())
    p.add_argument("--tmp-cache", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    _, info = common.begin(args)
    args.strategies = [s for s in args.strategies.split(",") if s]
    if args.quick:
        args.seeds, args.rounds = min(args.seeds, 2), min(args.rounds, 2)
    results = {"machine": info, "args": {k: v for k, v in vars(args).items()}, "sets": {}}
    if not args.timing_only:
        for name in [s for s in args.sets.split(",") if s]:
            results["sets"][name] = simulate(name, args)
    if not args.no_timing:
        print("\n== timing and memory")
        results["timing"] = timing(args)
    print(f"\nresults: {common.write_results('bench_label_assist', results, quick=args.quick)}")
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
