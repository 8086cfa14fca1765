"""Label assist on real photos: their features through the engine's one feature pass and cache, a trained
run's answers for photos to label (``quasar suggest``), and one labelling round (the Label more page).

Nothing here runs VGG16 for a photo whose features are cached: after the first pass, suggesting for
thousands of photos is a matter of seconds (bench/bench_label_assist.py measures it).
"""

from __future__ import annotations

import time

import numpy as np

from quasar_core.errors import QuasarError
from quasar_core.evaluation import wilson_interval
from quasar_core.label_assist.assistant import DEFAULT_COUNT, LabelAssistant, Suggestions

TUNED_BATCH = 16
READ_CHUNK = 512


def photo_features(dataset, config, precision: str, *, cache, base_loader=None, hooks=None, cancel=None):
    """(n, d) pooled features of every photo of `dataset` at `config`'s weights and size, in `precision` (the
    one a run ran in: its features are then read from the cache); None when cancelled."""
    from quasar_core import backbone
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    if precision not in ("int8", "float32", "bfloat16"):
        raise QuasarError(f"Label assist needs a model trained here (its features' precision is {precision!r}).")
    base_loader = base_loader or backbone.base_loader(config.weights, seed=config.seed)
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
    network_for = network_provider(weights=config.weights, image_size=config.image_size, precision=precision,
                                   base_loader=base_loader, cache=cache)
    feature_pass = FeaturePass(spec=spec, network_for=network_for, cache=cache, hooks=hooks, cancel=cancel)
    out = None
    for start in range(0, len(dataset), READ_CHUNK):  # a chunk at a time: the pass's own bookkeeping stays small
        part = feature_pass.features(dataset, np.arange(start, min(start + READ_CHUNK, len(dataset))))
        if part is None:
            return None
        if out is None:
            out = np.empty((len(dataset), *part.shape[2:]), dtype=np.float32)
        out[start:start + part.shape[1]] = part[0]
    return out if out is not None else np.zeros((0, 0), np.float32)


def suggest_for_run(run, photos, *, cache, count: int = DEFAULT_COUNT, base_loader=None, hooks=None) -> Suggestions:
    """A trained run's suggestions for `photos` (a Dataset of photos to label): its head, its "none of these"
    reference and its out-of-fold answers (for the confident band)."""
    from quasar_core.head import Head
    from quasar_core.runs.folder import FILES
    from quasar_core.runs.learned import classifier_of, familiarity_of

    if run.opened_from_file or not run.has_model or run.metrics is None:
        raise QuasarError(f"Run {run.name!r} cannot suggest labels: it needs a model trained and measured here "
                          "(train one on your labelled photos first).")
    predictions = run.metrics.predictions
    assistant = LabelAssistant.from_learned(
        Head.from_arrays(run.arrays(FILES.HEAD)), familiarity=familiarity_of(run), count=count,
        oof_confidence=[p["confidence"] for p in predictions],
        oof_correct=[p["true"] == p["predicted"] for p in predictions])
    probabilities = None
    if run.arrays(FILES.TUNED):  # fine-tuned: the run's own network gives both answers and features
        classifier = classifier_of(run, base_loader=base_loader)
        parts = [classifier.predict_proba([photos.pixels(i) for i in range(start, min(start + TUNED_BATCH,
                                                                                          len(photos)))],
                                          with_features=True) for start in range(0, len(photos), TUNED_BATCH)]
        probabilities = np.concatenate([p for p, _ in parts])
        features = np.concatenate([f for _, f in parts])
    else:
        features = photo_features(photos, run.config, run.status.precision, cache=cache, base_loader=base_loader,
                                  hooks=hooks)
    return assistant.suggest(features, files=[s.name for s in photos.samples], labels=run.labels, count=count,
                             probabilities=probabilities)


def labelling_round(features, targets, *, labels, tested, pool_features, pool_files, count: int = DEFAULT_COUNT,
                    seed: int = 0) -> tuple[LabelAssistant, Suggestions, dict]:
    """One round of the Label more page: a model learned from the labelled photos' features (measured out of
    fold on the `tested` ones), its suggestions for the photos still to label, and the round's numbers
    {"labelled", "accuracy", "low", "high", "tested", "seconds"}. `pool_features` may be a function that reads
    them: called after the model has learned, so the two never hold memory at once."""
    started = time.perf_counter()
    assistant = LabelAssistant(count=count, seed=seed).fit(features, targets, n_classes=len(labels), tested=tested)
    if callable(pool_features):
        pool_features = pool_features()
    suggestions = assistant.suggest(pool_features, files=pool_files, labels=labels, count=count)
    right = int(round(assistant.accuracy_ * assistant.n_tested_))
    low, high = wilson_interval(right, assistant.n_tested_)
    return assistant, suggestions, {"labelled": int(len(targets)), "accuracy": assistant.accuracy_, "low": low,
                                    "high": high, "tested": assistant.n_tested_,
                                    "seconds": time.perf_counter() - started}
