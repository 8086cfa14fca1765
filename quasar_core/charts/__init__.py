"""Chart builders for the dashboard and the report: typed data in, ``plotly.graph_objects.Figure`` out.

Every builder is a pure function: no streamlit, no tensorflow, no file reading, inputs left
unchanged, so the same data always gives the same figure and every chart is testable without
a browser. The inputs are the engine's own typed objects (``Evaluation``, history rows,
comparison results, the photo check's class advice; see ``quasar_core.charts.types``) and are
trusted; only what a caller can really get wrong is handled (an empty list gives an
empty-state annotation instead of a blank chart).

The charts are for people who are not machine-learning specialists: plain-words titles and
axes, the Okabe-Ito colour-blind-safe palette, exact numbers on hover, percentages written
one way everywhere (``quasar_core.wording.percent``: "94.7 %").

Usage: ``from quasar_core import charts; charts.confusion_matrix_figure(evaluation)``.
"""

from __future__ import annotations

from quasar_core.charts.comparison import (
    ACCURACY_AXIS, NO_CLASSES_TEXT, NO_RUNS_TEXT, WEIGHTS_NAMES, comparison_figure, learning_curve_figure,
)
from quasar_core.charts.labelling import NO_ROUNDS_TEXT, ROUNDS_TITLE, RoundRow, labelling_rounds_figure, rounds_words
from quasar_core.charts.photos import (
    FLAGGED_NAME, NO_PHOTOS_TEXT, class_distribution_figure, photo_map_figure, selected_photo,
)
from quasar_core.charts.prediction import (
    NO_NEW_PHOTOS_TEXT, NO_PREDICTION_TEXT, UNKNOWN_TITLE, familiarity_histogram, probability_bars,
)
from quasar_core.charts.quality import (
    NO_BANDS_TEXT, confusion_matrix_figure, per_class_table, reliability_figure, selected_cell,
)
from quasar_core.charts.story import (
    KEPT, LEADERBOARD_TITLE, LEARNING_TITLE, NO_LEARNING_TEXT, NO_SETTINGS_TEXT, accuracy_words, candidate_rows,
    choice_row, kept_model_history, leaderboard_figure, learning_rows, learning_story_figure, status_line, tunes,
)
from quasar_core.charts.training import (
    NO_CANDIDATES_TEXT, NO_EPOCHS_TEXT, RUN_NAMES, fine_tune_rows, head_rows, selection_figure, training_curves,
)
from quasar_core.charts.types import (
    CandidateRow, ChoiceRow, ClassAdviceLike, ComparisonResult, FineTuneRow, HeadRow, HistoryRow, LearningRow,
)

__all__ = [
    # the training's story (the Train page's picture)
    "learning_story_figure",
    "leaderboard_figure",
    "learning_rows",
    "candidate_rows",
    "choice_row",
    "kept_model_history",
    "status_line",
    "accuracy_words",
    "tunes",
    # training, for specialists
    "training_curves",
    "selection_figure",
    "fine_tune_rows",
    "head_rows",
    # how good the model is
    "confusion_matrix_figure",
    "selected_cell",
    "per_class_table",
    "reliability_figure",
    # photos
    "class_distribution_figure",
    "photo_map_figure",
    "selected_photo",
    # new photos
    "probability_bars",
    "familiarity_histogram",
    # label assist: what each round of labelling bought
    "labelling_rounds_figure",
    "rounds_words",
    "RoundRow",
    "ROUNDS_TITLE",
    "NO_ROUNDS_TEXT",
    # how much data
    "comparison_figure",
    "learning_curve_figure",
    # types
    "HeadRow",
    "FineTuneRow",
    "HistoryRow",
    "LearningRow",
    "CandidateRow",
    "ChoiceRow",
    "ComparisonResult",
    "ClassAdviceLike",
    # texts
    "LEARNING_TITLE",
    "LEADERBOARD_TITLE",
    "NO_LEARNING_TEXT",
    "NO_SETTINGS_TEXT",
    "KEPT",
    "NO_EPOCHS_TEXT",
    "NO_CANDIDATES_TEXT",
    "NO_BANDS_TEXT",
    "NO_PHOTOS_TEXT",
    "NO_PREDICTION_TEXT",
    "NO_NEW_PHOTOS_TEXT",
    "NO_RUNS_TEXT",
    "NO_CLASSES_TEXT",
    "UNKNOWN_TITLE",
    "FLAGGED_NAME",
    "RUN_NAMES",
    "WEIGHTS_NAMES",
    "ACCURACY_AXIS",
]
