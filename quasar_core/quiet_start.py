"""TensorFlow's start-up lines kept off a user's terminal, whatever imports TensorFlow first.

TF_CPP_MIN_LOG_LEVEL quiets TensorFlow's own logging, but on CPUs where oneDNN's custom operations
are on by default (AVX-512 VNNI, AMX) TensorFlow logs "oneDNN custom operations are on" through
Abseil before Abseil's logging is set up, and such lines ignore every level (abseil-cpp#1718).
So while the `tensorflow` package itself is imported, file descriptor 2 goes to a temporary file;
afterwards every line that is not one of these start-up notices is written back to stderr, so a
real error during the import is still seen.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import tempfile

START_UP_NOTICES = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
                    "cpu_feature_guard", "Unable to register cu", "TF-TRT Warning",
                    "rebuild TensorFlow with the appropriate compiler flags")


def quiet_tensorflow_start() -> None:
    """From now on, the first import of TensorFlow in this process prints no start-up notices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO and WARNING lines
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowFinder())


def without_notices(text: str) -> str:
    """`text` without TensorFlow's start-up notices (the other lines kept, in order)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(notice in line for notice in START_UP_NOTICES))


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: hands the real `tensorflow` spec back with a loader that filters fd 2."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; and the real finders below answer
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader  # nothing of this shim stays behind
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                sys.stderr.flush()  # Python's own warnings during the import are filtered the same way
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                rest = without_notices(captured.read().decode("utf-8", "replace"))
                if rest:
                    sys.stderr.write(rest)
                    sys.stderr.flush()
