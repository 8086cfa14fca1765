"""Drift: how many new photos look unlike the training photos, from their familiarity answers, for people."""

from __future__ import annotations

import numpy as np


def drift_summary(familiarity_values, unknown) -> dict:
    """How many new photos look unlike the training photos, as numbers and one sentence for people.

    {"n": photos, "unknown": how many unknown, "share": unknown / n (0.0 for none), "sentence": str}
    """
    fam = np.asarray(familiarity_values, dtype=float)
    flags = np.asarray(unknown)
    if fam.ndim != 1:
        raise ValueError(f"familiarity_values must be a 1-D array, one value per photo; got shape {fam.shape}.")
    if flags.shape != fam.shape:
        raise ValueError(f"unknown must have one flag per photo ({fam.shape}); got shape {flags.shape}.")
    if flags.dtype != bool:
        if flags.size and not np.isin(flags, (0, 1)).all():
            bad = flags[~np.isin(flags, (0, 1))][0]
            raise ValueError(f"unknown must hold True/False flags; got {bad!r}.")
        flags = flags.astype(bool)
    if fam.size and not (np.isfinite(fam).all() and fam.min() >= 0 and fam.max() <= 1):
        bad = fam[~(np.isfinite(fam) & (fam >= 0) & (fam <= 1))][0]
        raise ValueError(f"familiarity values must lie between 0 and 1; got {bad!r}.")
    n, u = int(fam.size), int(flags.sum())
    advice = "consider adding photos like " + ("it" if u == 1 else "them") + "."
    if n == 0:
        sentence = "There are no new photos to check."
    elif n == 1:
        sentence = ("The new photo looks different from what the model learned — " + advice if u
                    else "The new photo looks like the training photos.")
    else:
        everyone = "Both" if n == 2 else f"All {n}"
        if u == 0:
            sentence = f"{everyone} new photos look like the training photos."
        elif u == n:
            sentence = f"{everyone} new photos look different from what the model learned — " + advice
        else:
            verb = "looks" if u == 1 else "look"
            sentence = f"{u} of {n} new photos {verb} different from what the model learned — " + advice
    return {"n": n, "unknown": u, "share": u / n if n else 0.0, "sentence": sentence}
