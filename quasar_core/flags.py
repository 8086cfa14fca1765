"""The training flags of ``quasar train``/``compare``, made from the settings' declarations in config.py."""

from __future__ import annotations

import argparse
import dataclasses

from quasar_core.config import Augmentation, TrainConfig, declared
from quasar_core.presets import DEFAULT, PRESETS

# The CLI's own flags for settings whose dataclass name reads badly on a command line.
FLAG_NAMES = {"holdout_fraction": "--holdout", "max_cv_photos": "--max-cv-photos"}
NOT_FLAGS = {"augmentation"}


def _flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per declared setting; not given means "the preset's value" (shown as the default)."""
    group = parser.add_argument_group("training settings (each defaults to the preset's value)")
    group.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT.key,
                       help="starting settings: " + "; ".join(f"{p.key}: {p.description}" for p in PRESETS.values())
                            + " (default: %(default)s)")
    for cls, prefix in ((TrainConfig, ""), (Augmentation, "augment-")):
        for name, default, spec in declared(cls):
            if name in NOT_FLAGS:
                continue
            flag = _flag(name) if not prefix else f"--{prefix}{name.replace('_', '-')}"
            help_text = f"{spec.help} (default: {default if name != 'image_size' else 'suggested from the photos'})"
            if isinstance(default, bool):
                group.add_argument(flag, dest=prefix + name, action=argparse.BooleanOptionalAction, default=None,
                                   help=help_text)
            elif spec.choices is not None and name != "weights":
                group.add_argument(flag, dest=prefix + name, choices=spec.choices, default=None, help=help_text)
            else:
                kind = type(default) if name != "weights" else str
                group.add_argument(flag, dest=prefix + name, type=kind, default=None, help=help_text)


def config_from_args(args, dataset) -> TrainConfig:
    """The preset's settings for these photos, with every flag that was given on top."""
    return _with_flags(args, PRESETS[args.preset].config(dataset))


def candidates_from_args(args, dataset) -> list[TrainConfig] | None:
    """What ``--preset best`` tries (each candidate with every flag that was given on top); None for the others."""
    if args.preset != "best":
        return None
    unique = []
    for config in PRESETS["best"].candidates(dataset):
        config = _with_flags(args, config)
        if config not in unique:  # a flag may make two candidates the same
            unique.append(config)
    return unique if len(unique) > 1 else None


def _with_flags(args, config: TrainConfig) -> TrainConfig:
    top = {name: getattr(args, name) for name, _, _ in declared(TrainConfig)
           if name not in NOT_FLAGS and getattr(args, name, None) is not None}
    augmentation = {name: getattr(args, "augment-" + name) for name, _, _ in declared(Augmentation)
                    if getattr(args, "augment-" + name, None) is not None}
    if augmentation:
        top["augmentation"] = {**dataclasses.asdict(config.augmentation), **augmentation}
    return config.replace(**top)
