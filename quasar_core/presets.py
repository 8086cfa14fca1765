"""The presets, the same in the dashboard and on the command line (``--preset quick|balanced|best``).

*Balanced* is the default everywhere (the dashboard preselects it, ``quasar train`` without
flags uses it): photos at the size that suits them, up to 224 px. *Quick look* caps the size
at 128 px for a first look. *Best accuracy* tries candidates — Balanced's setting, a larger
image size where the photos have the detail for it, and an augmented copy of each photo at the
size that leads — scores each on the same photos the same way before keeping any, keeps the
winner and reports a number corrected for having chosen it (selection.py). Fine-tuning is not
among Best's candidates, which must fit in a few minutes on a CPU: it stays a setting of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from quasar_core.config import Augmentation, TrainConfig

IMAGE_SIZE_CANDIDATES = (64, 96, 128, 160, 224)
LARGE_SIZES = (288, 352)  # beyond VGG16's 224: worth it for large photos with small subjects
QUICK_MAX_SIZE = 128


def suggest_image_size(dataset) -> int:
    """Training side length: enough to upscale small sources ~3x (28 px photos gain nothing at 224), at most 224."""
    wanted = 3 * dataset.median_source_side()
    for candidate in IMAGE_SIZE_CANDIDATES:
        if candidate >= wanted:
            return candidate
    return IMAGE_SIZE_CANDIDATES[-1]


# How far Best may enlarge photos for a size above 224: flowers-full (shorter side 240) scored 1.6 points more
# at 352 px than at 224 (bench/bench_features.py), so enlarging by up to half pays; more would invent detail.
LARGE_UPSCALE = 1.5


def large_size(dataset) -> int | None:
    """A size above 224 the photos have the detail for (at most LARGE_UPSCALE x their median shorter side), if any."""
    side = dataset.median_source_side()
    fitting = [size for size in LARGE_SIZES if size <= LARGE_UPSCALE * side]
    return fitting[-1] if fitting else None


@dataclass(frozen=True)
class Preset:
    key: str  # the CLI's name
    name: str  # the dashboard's name
    description: str

    def config(self, dataset=None, base: TrainConfig | None = None) -> TrainConfig:
        """The preset's settings (for Best, the candidate trained first), sized for `dataset` when given."""
        base = base or TrainConfig()
        suggested = suggest_image_size(dataset) if dataset is not None else 128
        if self.key == "quick":
            suggested = min(suggested, QUICK_MAX_SIZE)
        return base.replace(image_size=suggested, augment=False, mode="feature-extraction")

    def candidates(self, dataset, base: TrainConfig | None = None) -> list[TrainConfig]:
        """What Best tries, cheapest first (a tie keeps the cheaper); one setting for the others. Best's
        augmented candidates are tried only at the size that leads by then (selection.fit_best)."""
        if self.key != "best":
            return [self.config(dataset, base)]
        plain = PRESETS["balanced"].config(dataset, base)
        larger = large_size(dataset) if dataset is not None else None
        sizes = [plain] + ([plain.replace(image_size=larger)] if larger is not None else [])
        augmented = [config.replace(augment=True, augmentation=Augmentation(views=2)) for config in sizes]
        found = sizes + augmented
        unique = []
        for config in found:
            if config not in unique:
                unique.append(config)
        return unique


PRESETS: dict[str, Preset] = {
    "quick": Preset("quick", "Quick look",
                    f"A first look in the least time: photos at up to {QUICK_MAX_SIZE} px. Usually a few points "
                    "less accurate than Balanced on real photos."),
    "balanced": Preset("balanced", "Balanced",
                       "The recommended start: photos at the size that suits them (up to 224 px)."),
    "best": Preset("best", "Best accuracy",
                   "Tries Balanced's setting, a larger size where your photos have the detail, and augmented copies "
                   "of each photo; keeps the one that scores best on your photos and says how sure that is. "
                   "Takes a few times Balanced's time."),
}
DEFAULT = PRESETS["balanced"]  # the dashboard's preselection and `quasar train` without --preset
BY_NAME = {preset.name: preset for preset in PRESETS.values()}


def preset_named(name: str) -> Preset:
    """A preset by its dashboard name or CLI key; ValueError quoting the name otherwise."""
    preset = BY_NAME.get(name) or PRESETS.get(name)
    if preset is None:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return preset
