"""Which arithmetic runs VGG16's frozen part: int8, bfloat16 or float32, and why.

``auto`` takes int8 only where it pays and is safe: the CPU has integer dot-product
instructions (VNNI or AMX, or AVX2), ONNX Runtime is installed, and int8 features agree with
float32 on the user's own first photos (mean cosine similarity at least ``AGREEMENT``).
Otherwise bfloat16 where the CPU has native bf16 (AVX512_BF16 or AMX), else float32.

Why AVX2 too: without VNNI, 8-bit multiply-adds go through VPMADDUBSW, whose 16-bit sums
saturate with full-range 8-bit weights (features then agreed only to 0.95, min 0.63, and lost
up to 3 points). int8_quantize.py quantises weights to 7 bits, which cannot saturate: measured on a
2-core AVX2 EPYC without VNNI, 2.6-2.9x TensorFlow's float32 speed, cosine 0.998 with float
features, linear-probe accuracy within 0.2 points on flowers and Fashion-MNIST. The agreement
check on the user's photos still guards every training. The choice and its reason are
shown on Configure and saved with the run. Only the cached features are int8: saved models
are float.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from quasar_core.features import int8

AGREEMENT = 0.99
CHECK_PHOTOS = 8
NO_INT8_ENV = "QUASAR_NO_INT8"  # "1": behave as on a CPU without int8 instructions (benchmarks, tests)


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # float32 | bfloat16 | int8
    reason: str


def cpu_supports_bfloat16(*, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512_BF16 or AMX)."""
    try:
        flags = Path(cpuinfo).read_text(errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def float_beside(precision: str) -> str:
    """What runs where int8 cannot (fine-tuning's boundary activations): `precision` itself unless it is
    int8, then float32. Not bfloat16: on an AVX512_BF16 Xeon, TensorFlow's bf16 VGG16 ran at 0.6x float32's
    speed to block 4 (5.4 vs 8.4 photos/s, 2026-12-02), and at 0.9x where bf16 is emulated."""
    return "float32" if precision == "int8" else precision


def int8_instructions(*, cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The CPU's instructions that make int8 pay: VNNI/AMX, else AVX2 (with 7-bit weights); [] if none."""
    if os.environ.get(NO_INT8_ENV, "").strip() == "1":
        return []
    found = int8.cpu_int8_instructions(cpuinfo=cpuinfo)
    if found:
        return found
    return ["avx2"] if cpu_has_avx2(cpuinfo=cpuinfo) else []


def cpu_has_avx2(*, cpuinfo: str = "/proc/cpuinfo") -> bool:
    try:
        return "avx2" in Path(cpuinfo).read_text(errors="ignore").split()
    except OSError:
        return False


def int8_unavailable_reason() -> str | None:
    """Why int8 cannot be used here (None when it can be tried)."""
    if not int8.runtime_available():
        return "ONNX Runtime is not installed"
    if not int8_instructions():
        return "this processor has no integer dot-product instructions (VNNI, AMX or AVX2) to make 8-bit arithmetic pay"
    return None


def choose_precision(requested: str, *, agreement: Callable[[], float] | None = None,
                     random_weights: bool = False) -> PrecisionChoice:
    """Resolve a TrainConfig.precision; for "auto", `agreement()` measures int8 against float32 on the
    user's first photos (called only when int8 is otherwise possible). Random weights (weights "none")
    have no weights file to quantise, so they never run in int8."""
    if requested not in ("auto", "float32", "bfloat16", "int8"):
        raise ValueError(f"precision must be 'auto', 'float32', 'bfloat16' or 'int8', got {requested!r}.")
    if requested == "int8":
        if random_weights:
            raise ValueError("precision 'int8' needs a VGG16 weights file; random weights ('none') have none. "
                             "Choose 'auto' or 'float32'.")
        if not int8.runtime_available():
            raise ValueError("precision 'int8' needs ONNX Runtime (pip install onnxruntime); "
                             "choose 'auto' to fall back by itself.")
        return PrecisionChoice("int8", "int8: chosen in the settings")
    if requested != "auto":
        return PrecisionChoice(requested, f"{requested}: chosen in the settings")
    fallback = _float_choice()
    blocked = "random weights have no weights file to quantise" if random_weights else int8_unavailable_reason()
    if blocked is None and agreement is None:  # planning: the check runs when training starts
        return PrecisionChoice("int8", f"int8 if its features agree with float32 on your first photos (checked "
                                       f"when training starts; otherwise {fallback.precision})")
    if blocked is None:
        score = agreement()
        if score >= AGREEMENT:
            flags = ", ".join(f.upper() for f in int8_instructions())
            return PrecisionChoice("int8", f"int8: this processor has {flags}, and int8 features agreed with "
                                           f"float32 on your first photos (cosine similarity {score:.3f})")
        blocked = f"int8 features agreed with float32 only to {score:.3f} on your photos (at least {AGREEMENT} needed)"
    return PrecisionChoice(fallback.precision, f"{fallback.reason}; not int8: {blocked}")


def _float_choice() -> PrecisionChoice:
    if cpu_supports_bfloat16():
        return PrecisionChoice("bfloat16", "bfloat16: this processor has native bfloat16 arithmetic")
    return PrecisionChoice("float32", "float32: this processor has no native bfloat16 arithmetic")
