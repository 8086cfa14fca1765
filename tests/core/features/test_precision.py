"""choose_precision: explicit choices are kept; "auto" takes int8 only with VNNI/AMX or AVX2, ONNX Runtime
and agreement on the user's photos, else bfloat16 where the CPU has it natively, else float32 — always
with the reason. CPUs are simulated by replacing what reads their flags."""

from __future__ import annotations

import pytest

from quasar_core.features import int8, precision
from quasar_core.features.precision import AGREEMENT, NO_INT8_ENV, PrecisionChoice, choose_precision


@pytest.fixture
def cpu(monkeypatch):
    """cpu(int8=[...], bf16=bool, runtime=bool) makes this machine look like another."""
    monkeypatch.delenv(NO_INT8_ENV, raising=False)

    def make(*, int8_flags=(), bf16=False, runtime=True, avx2=False):
        monkeypatch.setattr(int8, "cpu_int8_instructions", lambda **kwargs: list(int8_flags))
        monkeypatch.setattr(precision, "cpu_has_avx2", lambda **kwargs: avx2)
        monkeypatch.setattr(int8, "runtime_available", lambda: runtime)
        monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda **kwargs: bf16)

    return make


class Agreement:
    def __init__(self, score):
        self.score, self.calls = score, 0

    def __call__(self):
        self.calls += 1
        return self.score


@pytest.mark.parametrize("requested", ["float32", "bfloat16"])
def test_explicit_float_choices_are_kept_whatever_the_cpu(cpu, requested):
    cpu(int8_flags=["avx512_vnni"], bf16=False)
    agreement = Agreement(1.0)
    assert choose_precision(requested, agreement=agreement) == PrecisionChoice(
        requested, f"{requested}: chosen in the settings")
    assert agreement.calls == 0


def test_explicit_int8_needs_the_runtime_only(cpu):
    cpu(int8_flags=[], runtime=True)
    assert choose_precision("int8") == PrecisionChoice("int8", "int8: chosen in the settings")
    cpu(runtime=False)
    with pytest.raises(ValueError, match="ONNX Runtime") as raised:
        choose_precision("int8")
    assert "'auto'" in str(raised.value)


@pytest.mark.parametrize("bad", ["float16", "", "AUTO", None])
def test_unknown_precisions_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        choose_precision(bad)


def test_auto_takes_int8_with_vnni_runtime_and_agreement(cpu):
    cpu(int8_flags=["avx512_vnni", "amx_int8"], bf16=True)
    agreement = Agreement(0.995)
    choice = choose_precision("auto", agreement=agreement)
    assert choice.precision == "int8" and agreement.calls == 1
    assert "AVX512_VNNI, AMX_INT8" in choice.reason and "0.995" in choice.reason
    assert choose_precision("auto", agreement=Agreement(AGREEMENT)).precision == "int8"  # at least 0.99


def test_auto_takes_int8_with_avx2_alone_when_it_agrees(cpu):
    """Without VNNI the 7-bit weights cannot saturate (measured: 2.6-2.9x float32, cosine 0.998)."""
    cpu(int8_flags=[], avx2=True)
    choice = choose_precision("auto", agreement=Agreement(0.998))
    assert choice.precision == "int8" and "AVX2" in choice.reason and "0.998" in choice.reason
    assert precision.int8_instructions() == ["avx2"]
    cpu(int8_flags=["avx512_vnni"], avx2=True)
    assert precision.int8_instructions() == ["avx512_vnni"]  # VNNI named first when there is some


@pytest.mark.parametrize("bf16, fallback", [(True, "bfloat16"), (False, "float32")])
def test_auto_falls_back_when_int8_disagrees(cpu, bf16, fallback):
    cpu(int8_flags=["avx_vnni"], bf16=bf16)
    choice = choose_precision("auto", agreement=Agreement(0.97))
    assert choice.precision == fallback
    assert choice.reason.startswith(f"{fallback}: this processor has")
    assert "agreed with float32 only to 0.970" in choice.reason and str(AGREEMENT) in choice.reason


@pytest.mark.parametrize("bf16, fallback, words", [(True, "bfloat16", "has native bfloat16"),
                                                   (False, "float32", "has no native bfloat16")])
def test_auto_without_int8_instructions_never_measures_agreement(cpu, bf16, fallback, words):
    cpu(int8_flags=[], bf16=bf16)
    agreement = Agreement(1.0)
    choice = choose_precision("auto", agreement=agreement)
    assert agreement.calls == 0
    assert choice.precision == fallback
    assert words in choice.reason and "no integer dot-product instructions (VNNI, AMX or AVX2)" in choice.reason


def test_auto_without_the_runtime(cpu):
    cpu(int8_flags=["avx512_vnni"], runtime=False)
    agreement = Agreement(1.0)
    choice = choose_precision("auto", agreement=agreement)
    assert (choice.precision, agreement.calls) == ("float32", 0)
    assert "not int8: ONNX Runtime is not installed" in choice.reason


def test_no_int8_variable_hides_the_instructions(cpu, monkeypatch):
    cpu(int8_flags=["avx512_vnni"])
    monkeypatch.setenv(NO_INT8_ENV, "1")
    assert precision.int8_instructions() == []
    assert choose_precision("auto", agreement=Agreement(1.0)).precision == "float32"
    monkeypatch.setenv(NO_INT8_ENV, "0")
    assert precision.int8_instructions() == ["avx512_vnni"]


def test_planning_without_an_agreement_says_int8_will_be_checked(cpu):
    cpu(int8_flags=["amx_int8"], bf16=False)
    choice = choose_precision("auto", agreement=None)
    assert choice.precision == "int8"
    assert "checked when training starts" in choice.reason and "otherwise float32" in choice.reason
    cpu(int8_flags=[], bf16=True)
    planned = choose_precision("auto", agreement=None)
    assert planned.precision == "bfloat16" and "not int8" in planned.reason


def test_random_weights_never_run_in_int8(cpu):
    """VGG16 with random weights has no weights file for ONNX Runtime to quantise."""
    cpu(int8_flags=["avx512_vnni"], bf16=False)
    agreement = Agreement(1.0)
    choice = choose_precision("auto", agreement=agreement, random_weights=True)
    assert (choice.precision, agreement.calls) == ("float32", 0)
    assert "random weights" in choice.reason
    assert choose_precision("auto", random_weights=True).precision == "float32"  # planning too
    with pytest.raises(ValueError, match="weights file"):
        choose_precision("int8", random_weights=True)


def test_bfloat16_support_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    for flags, expected in ((" avx512f avx512_bf16", True), (" amx_bf16 amx_tile", True), (" avx512f avx2", False)):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2{flags}\n")
        assert precision.cpu_supports_bfloat16(cpuinfo=str(cpuinfo)) is expected
    assert precision.cpu_supports_bfloat16(cpuinfo=str(tmp_path / "missing")) is False


@pytest.mark.parametrize("bf16", [True, False])
def test_what_runs_beside_int8_is_float32_whatever_the_cpu(cpu, bf16):
    cpu(int8_flags=["avx512_vnni"], bf16=bf16)
    assert precision.float_beside("int8") == "float32"
    assert precision.float_beside("float32") == "float32" and precision.float_beside("bfloat16") == "bfloat16"
