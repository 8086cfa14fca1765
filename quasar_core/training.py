"""Transfer learning from VGG16, estimator-style: ``TransferClassifier(config).fit(dataset)``.

The recipe, in ``fit``: VGG16's frozen part runs once per photo (and augmented view) and its
features are cached on disk; heads learn on the folds, so every photo is predicted by a model
that never saw it (the honest numbers, and the choice of regularisation); the head you keep
learns from every photo; optionally VGG16's top blocks are fine-tuned on cached boundary
activations; the confidence is calibrated on the out-of-fold predictions; and the training
photos' features become the "none of these" reference.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from quasar_core.backbone import BLOCKS, boundary_layer
from quasar_core.config import TrainConfig
from quasar_core.crossval import CrossValidation, cross_validate, folds_for, learning_curve
from quasar_core.data.images import resize_square
from quasar_core.data.split import Folds
from quasar_core.familiarity import FamiliarityModel
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import FeaturePass, int8_agreement, network_provider
from quasar_core.features.precision import CHECK_PHOTOS, PrecisionChoice, choose_precision, float_beside
from quasar_core.head import Head, assemble_model, fit_head, fit_temperature
from quasar_core.head import with_features as model_with_features
from quasar_core.near_copies import fold_thumbnails
from quasar_core.progress import TrainingHooks, is_cancelled
from quasar_core import backbone, tuning


class TransferClassifier:
    """An image classifier trained by transfer learning from VGG16.

    Learned (by ``fit``, or given to ``from_learned`` when a run is opened): ``labels_``,
    ``precision_`` (what ran VGG16 and why), ``folds_``, ``validation_`` (out-of-fold
    predictions), ``head_`` (temperature included), ``tuned_`` (fine-tuned layers' weights or
    None), ``familiarity_``, ``features_`` (every photo's pooled features), ``history_``,
    ``timings_`` (seconds per phase), ``cancelled_``.
    """

    def __init__(self, config: TrainConfig | None = None, *, cache: FeatureCache | None = None, base_loader=None):
        self.config = config or TrainConfig()
        self.cache = cache
        self.base_loader = base_loader  # returns the shared VGG16 base; called only when Keras is needed

    # --- the recipe -----------------------------------------------------------------------
    def fit(self, dataset, *, hooks: TrainingHooks | None = None, cancel: threading.Event | None = None,
            checkpoint_dir=None, on_head=None, folds: Folds | None = None) -> "TransferClassifier":
        """Learn from every photo of `dataset`; measure on photos each fold's model never saw. Returns self.

        `on_head(self)` is called as soon as the head is learned (the run folder saves it, so a
        crash during fine-tuning keeps a usable model). `folds` imposes the folds (Best's
        candidates are scored on the same photos).
        """
        if self.validate(dataset, hooks=hooks, cancel=cancel, folds=folds) is None:
            return self._stopped()
        return self.finish(dataset, checkpoint_dir=checkpoint_dir, on_head=on_head)

    def validate(self, dataset, *, hooks: TrainingHooks | None = None, cancel: threading.Event | None = None,
                 folds: Folds | None = None):
        """The measuring half of the recipe: every photo answered by models that never saw it. Returns self,
        or None when cancelled. Learned: ``features_``, ``folds_``, ``validation_`` (the photo check and Best's
        comparison of settings need no more)."""
        self._begin(dataset, hooks, cancel)
        views = self._timed("features", self._pooled_features, dataset)  # VGG16 once per photo and view
        if views is None:
            return None
        self._views, self.features_ = views, views[0]
        # copies kept together, by their pixels too for small photos
        self.folds_ = self._folds(self.features_, dataset) if folds is None else self._imposed(folds)
        self.validation_ = self._timed("head", self._cross_validate, views)  # every photo tested once
        if self.validation_ is None:
            return None
        if self.config.fine_tunes:  # fine-tuning, measured on the photos set aside
            self._activations = self._timed("fine-tune", self._fine_tune_estimate, dataset)
        return self

    def finish(self, dataset, *, checkpoint_dir=None, on_head=None) -> "TransferClassifier":
        """The keeping half, after `validate`: the model that learns from every photo. Returns self."""
        self._record_learning_curve()  # what more photos bought, for the Train page
        self.head_ = self._head(self._views, np.arange(len(dataset)))  # the kept head: every photo
        if on_head is not None:
            on_head(self)
        if self.config.fine_tunes and getattr(self, "_activations", None) is not None:
            self._timed("fine-tune", self._fine_tune_kept, dataset, checkpoint_dir)  # VGG16's top blocks too
        self.head_.temperature = fit_temperature(*self.validation_.stacked_logits(self.targets_))  # calibrated
        self.familiarity_ = FamiliarityModel(seed=self.config.seed).fit(self.features_, self.targets_)
        self._activations = self._tuner = None  # boundary activations are large: not kept with the model
        self.cancelled_ = is_cancelled(self._cancel)
        return self

    # --- the steps ------------------------------------------------------------------------
    def _begin(self, dataset, hooks, cancel):
        if len(dataset) == 0:
            raise ValueError("The dataset is empty; there are no photos to learn from.")
        self._hooks, self._cancel = hooks or TrainingHooks(), cancel
        self.labels_ = list(dataset.labels)
        self.targets_ = dataset.targets()
        self.history_, self.timings_, self.cancelled_, self.tuned_, self.model_ = [], {}, False, None, None
        self._hooks_rows = TrainingHooks(self._hooks.on_progress, self._record, self._hooks.on_message)
        self._networks = {}  # precision -> network_for, shared by the int8 check and the feature pass
        self._activations = self._tuner = None
        self.precision_ = choose_precision(self.config.precision, agreement=lambda: int8_agreement(
            dataset, np.arange(min(CHECK_PHOTOS, len(dataset))), weights=self.config.weights,
            int8_pass=self._feature_pass("int8", quiet=True),  # the feature pass then reads these from the cache
            image_size=self.config.image_size, base_loader=self._base, cache=self.cache),
            random_weights=backbone.resolve_weights(self.config.weights) is None)

    def _record(self, row: dict) -> None:
        self.history_.append(row)
        self._hooks.epoch_end(row)

    def _timed(self, phase, step, *args):
        started = time.perf_counter()
        try:
            return step(*args)
        finally:
            self.timings_[phase] = self.timings_.get(phase, 0.0) + time.perf_counter() - started

    def _feature_pass(self, precision: str, *, quiet: bool = False) -> FeaturePass:
        """`quiet`: no progress and no cancelling (the int8 check's 8 photos)."""
        config = self.config
        spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
        if precision not in self._networks:
            self._networks[precision] = network_provider(weights=config.weights, image_size=config.image_size,
                                                         precision=precision, base_loader=self._base, cache=self.cache)
        return FeaturePass(spec=spec, network_for=self._networks[precision], cache=self.cache,
                           hooks=TrainingHooks() if quiet else self._hooks, cancel=None if quiet else self._cancel,
                           augmentation=config.augmentation if config.augment else None, seed=config.seed)

    def _pooled_features(self, dataset):
        feature_pass = self._feature_pass(self.precision_.precision)
        views = feature_pass.features(dataset, np.arange(len(dataset)), views=self.config.views)
        self._networks.clear()  # the int8 session is not kept with the model (session state holds it)
        # Loading the network (TensorFlow, VGG16's weights, an int8 model) is not the pass itself.
        self.timings_["load"] = self.timings_.get("load", 0.0) + feature_pass.load_seconds
        self.timings_["features"] = self.timings_.get("features", 0.0) - feature_pass.load_seconds
        return views

    def _folds(self, features, dataset) -> Folds:
        return folds_for(features, self.targets_, self.config, thumbs=fold_thumbnails(dataset, cache=self.cache))

    def _imposed(self, folds: Folds) -> Folds:
        """Given folds; fine-tuning, too costly fold by fold, is measured on the first folds' photos only (a
        hold-out of about `holdout_fraction` of them: 2 folds of 10 at 0.2)."""
        if self.config.fine_tunes and folds.n_folds > 1:
            first = max(1, round(folds.n_folds * self.config.holdout_fraction))
            return Folds(np.where(folds.assignment < first, 0, -1), "holdout")
        return folds

    def _cross_validate(self, views) -> CrossValidation | None:
        return cross_validate(views, self.targets_, self.folds_, n_classes=len(self.labels_),
                              class_weights=self.config.class_weights, hooks=self._hooks_rows, cancel=self._cancel)

    def _head(self, views, indices) -> Head:
        x = views[:, indices].reshape(-1, views.shape[-1])
        y = np.tile(self.targets_[indices], views.shape[0])
        return fit_head(x, y, n_classes=len(self.labels_), strength=self.validation_.strength,
                        class_weights=self.config.class_weights)

    def _fine_tune_estimate(self, dataset):
        """Fine-tune on the photos outside the held-out share and answer the held-out photos with it. Returns
        the boundary activations (for the kept model), or None when stopped."""
        config = self.config
        boundary = boundary_layer(BLOCKS - config.fine_tune_blocks)
        activations = self._feature_pass(float_beside(self.precision_.precision)).features(
            dataset, np.arange(len(dataset)), views=config.views, layer=boundary)
        if activations is None:
            return None
        learn, test = self.folds_.split(0)
        self._tuner = tuning.FineTuner(config, self._base(), boundary, hooks=self._hooks_rows, cancel=self._cancel)
        estimate = self._tuner.fit(activations, self.targets_, learn, start=self._head(self._views, learn),
                                   validation=test, checkpoint_dir=None, label="hold-out")
        if estimate is None:
            return None
        self.validation_.logits[test] = estimate.logits(activations[0, test])
        return activations

    def _fine_tune_kept(self, dataset, checkpoint_dir) -> None:
        kept = self._tuner.fit(self._activations, self.targets_, np.arange(len(dataset)), start=self.head_,
                               checkpoint_dir=checkpoint_dir, label="kept model")
        if kept is not None:
            self.head_, self.tuned_ = kept.head, kept.tuned
            # "none of these" compares photos in the space the deployed model computes: the fine-tuned one
            self.features_ = kept.features(self._activations[0])

    def _record_learning_curve(self) -> None:
        for row in learning_curve(self._views, self.targets_, self.validation_, n_classes=len(self.labels_),
                                  class_weights=self.config.class_weights, seed=self.config.seed):
            self._record(row)

    def _stopped(self) -> "TransferClassifier":
        """Cancelled before a head was learned: nothing to keep, say so plainly."""
        self.cancelled_ = True
        self.head_ = None
        return self

    # --- using the model ------------------------------------------------------------------
    @classmethod
    def from_learned(cls, config: TrainConfig, *, labels, head: Head, tuned=None, familiarity=None,
                     precision: PrecisionChoice | None = None, history=None, base_loader=None,
                     cache: FeatureCache | None = None) -> "TransferClassifier":
        """A fitted classifier from what a run folder keeps (the run folder's owner reads the files)."""
        classifier = cls(config, cache=cache, base_loader=base_loader)
        classifier.labels_, classifier.head_, classifier.tuned_ = list(labels), head, tuned
        classifier.familiarity_, classifier.precision_ = familiarity, precision
        classifier.history_, classifier.timings_, classifier.cancelled_ = list(history or []), {}, False
        classifier.model_ = None
        return classifier

    def _base(self):
        if self.base_loader is None:
            self.base_loader = backbone.base_loader(self.config.weights, seed=self.config.seed)
        return self.base_loader()

    def model(self):
        """The deployable Keras model (raw RGB of any size in, probabilities out), assembled once."""
        self._check_fitted()
        if self.model_ is None:
            self.model_ = assemble_model(self._base(), self.head_, image_size=self.config.image_size,
                                         tuned=self.tuned_)
        return self.model_

    def predict_proba(self, images, *, with_features: bool = False):
        """Class probabilities for RGB images (an (n, H, W, 3) array or a list of arrays of any sizes).

        With `with_features`, also their pooled VGG16 features (for "none of these"): one pass.
        """
        self._check_fitted()
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        size = self.config.image_size
        batch = np.stack([resize_square(image, size) for image in images]) if len(images) else \
            np.zeros((0, size, size, 3), np.float32)
        if getattr(self, "_both", None) is None or self._both_of is not self.model():
            self._both, self._both_of = model_with_features(self.model()), self.model()
        outputs = [self._both(batch[i : i + 16], training=False) for i in range(0, len(batch), 16)]
        probabilities = np.concatenate([np.asarray(o[0]) for o in outputs]) if outputs else \
            np.zeros((0, len(self.labels_)), np.float32)
        if not with_features:
            return probabilities
        features = np.concatenate([np.asarray(o[1]) for o in outputs]) if outputs else \
            np.zeros((0, 512 * len(self.head_.layers)), np.float32)
        return probabilities, features

    def predict(self, images) -> list[str]:
        return [self.labels_[i] for i in self.predict_proba(images).argmax(axis=1)]

    def _check_fitted(self):
        if getattr(self, "head_", None) is None:
            raise ValueError("This classifier has no trained model yet: call fit() or open a run first.")

