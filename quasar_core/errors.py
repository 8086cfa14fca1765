"""Exceptions whose messages are written for people, not for developers.

Every message says what went wrong and what to do next, so the CLI can print it on
one line and the dashboard can show it as it is.
"""


class QuasarError(Exception):
    """Base class: a problem the user can act on (the message says how)."""


class DatasetError(QuasarError):
    """The images given cannot be trained on (too few classes, too few images, nothing usable)."""


class WeightsUnavailableError(QuasarError):
    """The ImageNet weights for VGG16 cannot be had (offline and no local file)."""


class UnsafeModelError(QuasarError):
    """A model file from outside the app's own runs contains code or unknown objects."""


class ResourceLimitError(QuasarError):
    """A job would not fit in memory, or an upload is over a configured limit."""



class DiskFullError(QuasarError):
    """A file could not be written because the disk is full (the message says what to do)."""
