"""How well can any head on VGG16's pooled features suggest the true class of a wrongly labelled photo?

    python bench/bench_photo_check_bound.py [--splits 12] [--per-class 80] [--flip-share 0.1]
                                            [--image-size 128] [--precision int8] [--quick]

The photo check suggests, for a photo it thinks is wrongly labelled, the most probable other class; it can be
right only as often as the probabilities behind it are. This measures that ceiling on flowers-128. Every
flowers photo goes once through a FeaturePass (`--image-size`, `--precision`, as the Quick preset and
`quasar check` run). Then, for each of `--splits` seeded subsets (`--per-class` photos a class) with
`--flip-share` of the labels moved to another class (seeded):
  check    photo_findings.diagnose on the subset alone (its own out-of-fold logistic regression, nearest
           neighbours and class centres), as *Check my photos* sees it
  bound    photo_findings.diagnose given, in place of its out-of-fold probabilities, those of a logistic
           regression (standardised, C = label_issues.LR_C) that learned from every *other* photo of the data
           set with its clean label: about 10x the photos and no planted flips
Per arm: the share of flipped photos among the first 2 x flipped label issues, the share of those for
which the true class is suggested, and how often the probabilities' top class is the true one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from bench_folds import all_features  # noqa: E402


def flip(y, share: float, rng):
    """(given labels, flipped positions): `share` of the labels moved to another class."""
    import numpy as np

    classes = int(y.max()) + 1
    given = y.copy()
    flipped = rng.permutation(len(y))[: round(share * len(y))]
    for i in flipped:
        given[i] = rng.choice([c for c in range(classes) if c != y[i]])
    return given, flipped


def measured(report, truth, flipped, names) -> tuple[float, float]:
    """(flipped found in the first 2 x flipped, true class suggested for those found)."""
    position = {f"photo_{i}": i for i in range(len(truth))}
    wanted = set(int(i) for i in flipped)
    first = [(position[i.file], i.suggested) for i in report.label_issues[: 2 * len(wanted)]
             if position[i.file] in wanted]
    right = sum(names[truth[i]] == suggested for i, suggested in first)
    return len(first) / max(len(wanted), 1), (right / len(first) if first else 0.0)


def one_split(x_all, y_all, number: int, args) -> dict:
    import numpy as np

    from quasar_core.label_issues import default_fit_predict
    from quasar_core.photo_findings import diagnose

    classes = int(y_all.max()) + 1
    names = [f"class_{c}" for c in range(classes)]
    rng = np.random.default_rng([number, 23])
    chosen = np.concatenate([rng.permutation(np.flatnonzero(y_all == c))[: args.per_class] for c in range(classes)])
    others = np.setdiff1d(np.arange(len(y_all)), chosen)
    x, truth = x_all[chosen], y_all[chosen]
    given, flipped = flip(truth, args.flip_share, rng)
    files = [f"photo_{i}" for i in range(len(chosen))]
    bound = default_fit_predict(x_all[others], y_all[others], x)
    row = {"split": number, "photos": len(chosen), "flipped": len(flipped), "learned_from_for_bound": len(others)}
    for arm, probabilities in (("check", None), ("bound", bound)):
        report = diagnose(x, given, class_names=names, files=files, oof_probabilities=probabilities, folds=10,
                          seed=number)
        recall, suggested = measured(report, truth, flipped, names)
        row[arm] = {"recall_in_first_2x": recall, "suggested_true": suggested}
    row["bound"]["top_class_accuracy"] = float((bound.argmax(1) == truth).mean())
    return row


def main(argv=None) -> int:
    import numpy as np

    p = common.parser(__doc__)
    p.add_argument("--splits", type=int, default=12)
    p.add_argument("--per-class", type=int, default=80)
    p.add_argument("--flip-share", type=float, default=0.1)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--precision", default="int8")
    args = p.parse_args(argv)
    if args.quick:
        args.splits, args.per_class, args.image_size = 2, 20, 32
    started, info = common.begin(args)
    base_loader = common.shared_base_loader()
    from quasar_core.features.cache import FeatureCache

    results = {"machine": info, "settings": vars(args)}
    with common.work_dir(args, "quasar-bench-photo-check-bound-") as work:
        x_all, y_all = all_features("flowers", work, args, FeatureCache(work / "features"), base_loader)
    print(f"flowers: {len(y_all)} photos' features at {args.image_size} px ({args.precision}); {args.splits} subsets "
          f"of {args.per_class} a class, {args.flip_share:.0%} of labels flipped", flush=True)
    rows = [one_split(x_all, y_all, number, args) for number in range(args.splits)]
    summary = {arm: {key: float(np.mean([r[arm][key] for r in rows])) for key in rows[0][arm]}
               for arm in ("check", "bound")}
    for arm, words in (("check", "the photo check on the subset alone"),
                       ("bound", f"bound: a head that learned from {rows[0]['learned_from_for_bound']} other clean photos")):
        s = summary[arm]
        extra = f", its top class right for {s['top_class_accuracy']:.3f}" if "top_class_accuracy" in s else ""
        print(f"  {words}: flipped found in the first 2x {s['recall_in_first_2x']:.3f}, true class suggested "
              f"{s['suggested_true']:.3f}{extra}")
    results.update(rows=rows, summary=summary, total_seconds=time.perf_counter() - started)
    print(f"\ntotal run time of bench_photo_check_bound.py: {results['total_seconds']:.0f} s")
    print(f"results: {common.write_results('bench_photo_check_bound', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
