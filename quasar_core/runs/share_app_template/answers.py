"""The three answers an exported Quasar Nexus model gives, in words (numpy only; the app and predict.py share it).

* familiar: "It is most likely ants (87.3 % sure)."
* unusual:  "Not sure: this photo looks unusual for your classes; the closest is ants (61.0 % sure)."
* unknown:  "This doesn't look like any of your classes" (the closest is named after it).

A confidence never reads "100 %" nor "0 %": above 99 % it is "more than 99 %", below 1 % "less than 1 %".
"""

import numpy as np

SURE_TOP = 0.99
SURE_BOTTOM = 0.01


def confidence(fraction, digits=1):
    """0.873 -> "87.3 %"; 0.9996 -> "more than 99 %"; 0.004 -> "less than 1 %"."""
    fraction = float(fraction)
    if fraction > SURE_TOP:
        return f"more than {SURE_TOP * 100:.0f} %"
    if fraction < SURE_BOTTOM:
        return f"less than {SURE_BOTTOM * 100:.0f} %"
    return f"{fraction * 100:.{digits}f} %"


def familiarity_verdicts(familiarity, features, arrays):
    """(familiarity, unknown, unusual) arrays from familiarity.py's function, which returns the first two or all
    three (older exports: two, so nothing is "unusual")."""
    result = familiarity(features, arrays)
    values, unknown = np.asarray(result[0], dtype=np.float64), np.asarray(result[1], dtype=bool)
    unusual = np.asarray(result[2], dtype=bool) if len(result) > 2 else np.zeros(len(unknown), dtype=bool)
    return values, unknown, unusual & ~unknown


def verdict(probabilities, labels, *, unknown=False, unusual=False):
    """("familiar" | "unusual" | "unknown", the answer in words) for one photo's probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    best = int(np.argmax(probabilities))
    label, sure = labels[best], confidence(probabilities[best])
    if unknown:
        return "unknown", f"This doesn't look like any of your classes (the closest is {label}, {sure})."
    if unusual:
        return "unusual", f"Not sure: this photo looks unusual for your classes; the closest is {label} ({sure} sure)."
    return "familiar", f"It is most likely {label} ({sure} sure)."
