"""The presets, the same in the dashboard and on the command line (``--preset quick|balanced|best``).

*Quick look* and *Balanced* are one setting each. *Best accuracy* tries candidates — the other
presets' settings, a larger image size where the photos have the detail for it, augmentation,
and fine-tuning VGG16's top block — scores each on the same photos the same way, keeps the
winner and says which won and by how much. Since Quick look's settings are among the
candidates, Best is never worse than Quick on that score.
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


def large_size(dataset) -> int | None:
    """A size above 224 the photos can fill without upscaling (their median shorter side), if any."""
    side = dataset.median_source_side()
    fitting = [size for size in LARGE_SIZES if size <= side]
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
            return base.replace(image_size=min(suggested, QUICK_MAX_SIZE), augment=False, mode="feature-extraction")
        return base.replace(image_size=suggested, augment=self.key == "balanced", mode="feature-extraction",
                            augmentation=Augmentation(views=2))

    def candidates(self, dataset, base: TrainConfig | None = None) -> list[TrainConfig]:
        """What Best tries, cheapest first (a tie keeps the cheaper); one setting for the others."""
        if self.key != "best":
            return [self.config(dataset, base)]
        quick, balanced = PRESETS["quick"].config(dataset, base), PRESETS["balanced"].config(dataset, base)
        plain = balanced.replace(augment=False)
        found = [quick, plain, balanced]
        larger = large_size(dataset) if dataset is not None else None
        if larger is not None:
            found.append(plain.replace(image_size=larger))
        found.append(plain.replace(mode="fine-tune", fine_tune_blocks=1, fine_tune_epochs=5))
        unique = []
        for config in found:
            if config not in unique:
                unique.append(config)
        return unique


PRESETS: dict[str, Preset] = {
    "quick": Preset("quick", "Quick look",
                    f"A first model in about a minute: photos at up to {QUICK_MAX_SIZE} px, no augmented copies."),
    "balanced": Preset("balanced", "Balanced",
                       "Photos at the size that suits them (up to 224 px) plus one augmented copy of each: about "
                       "twice Quick look's time."),
    "best": Preset("best", "Best accuracy",
                   "Tries Quick look's and Balanced's settings, a larger size where your photos have the detail, "
                   "and fine-tuning; keeps the one that scores best on your photos. The slowest."),
}
BY_NAME = {preset.name: preset for preset in PRESETS.values()}


def preset_named(name: str) -> Preset:
    """A preset by its dashboard name or CLI key; ValueError quoting the name otherwise."""
    preset = BY_NAME.get(name) or PRESETS.get(name)
    if preset is None:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return preset
