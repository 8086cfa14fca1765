"""Small synthetic "features" with planted problems, shared by the photo check's tests (test_photo_findings,
test_label_issues, test_class_advice): Gaussian clusters standing in for VGG16's pooled features.

Four classes of 40 photos around random centres in 32 dimensions; 8 labels flipped to another
class, 3 near-copies (one filed under another class) and 3 photos drawn around no centre.
"""

from __future__ import annotations

import numpy as np

NAMES = ["ant", "bee", "cat", "dog"]
PER, DIM = 40, 32


def planted(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(NAMES)), PER)
    x = rng.normal(0, 1, (len(NAMES), DIM))[truth] + rng.normal(0, 1, (len(truth), DIM))
    labels = truth.copy()
    flipped = rng.choice(len(truth), 8, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, len(NAMES), 8)) % len(NAMES)
    sources = np.setdiff1d(np.arange(len(truth)), flipped)[[3, 50, 90]]
    copies = x[sources] + rng.normal(0, 0.02, (3, DIM))
    copy_labels = labels[sources].copy()
    copy_labels[1] = (copy_labels[1] + 1) % len(NAMES)  # the second copy is filed under another class
    strays = rng.normal(0, 1.5, (3, DIM))
    features = np.concatenate([x, copies, strays])
    all_labels = np.concatenate([labels, copy_labels, rng.integers(0, len(NAMES), 3)])
    files = [f"{NAMES[c]}/photo_{i:03d}.png" for i, c in enumerate(all_labels)]
    n = len(truth)
    return dict(features=features, labels=all_labels, files=files, truth=truth, flipped=flipped,
                pairs=[(files[s], files[n + j]) for j, s in enumerate(sources)],
                cross_pair=(files[sources[1]], files[n + 1]),
                strays=files[n + 3:])
