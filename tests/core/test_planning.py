"""Planning: VGG16's arithmetic, the time estimate (photos already cached cost nothing), the memory
estimate (photos are streamed: their pixel sizes do not count) and the plan shown before training."""

from __future__ import annotations

import math

import pytest

from quasar_core import planning
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.errors import QuasarError, ResourceLimitError
from quasar_core.features.precision import PrecisionChoice
from quasar_core.planning import (DECODE_SECONDS_PER_MEGAPIXEL, HEAD_FIT_SECONDS, MEMORY_LIMIT_ENV, check_memory,
                                  estimate_training_memory, estimate_training_time, memory_limit_bytes, plan,
                                  seconds_per_photo, vgg16_gflops)

RATE = 10.0  # float32 photos per second at 224 px
FLOAT32 = PrecisionChoice("float32", "float32: chosen in the settings")


def estimate(config, n=100, **kwargs):
    kwargs.setdefault("megapixels", 0.0)
    return estimate_training_time(config, n, rate_at_224=RATE, **kwargs)


def test_vgg16_is_about_30_7_gflops_at_224():
    assert vgg16_gflops(224) == pytest.approx(30.69, abs=0.01)


@pytest.mark.parametrize("size", [32, 96, 112, 160])
def test_gflops_grow_with_the_square_of_the_side(size):
    assert vgg16_gflops(size) == pytest.approx(vgg16_gflops(224) * (size / 224) ** 2)


def test_gflops_from_a_block_on_are_the_top_of_the_stack():
    per_block = [vgg16_gflops(224, from_block=b) - vgg16_gflops(224, from_block=b + 1) for b in range(1, 5)]
    per_block.append(vgg16_gflops(224, from_block=5))
    assert all(part > 0 for part in per_block)
    assert sum(per_block) == pytest.approx(vgg16_gflops(224))
    assert vgg16_gflops(224, from_block=6) == 0


def test_time_estimate_by_hand():
    config = TrainConfig(weights="none", image_size=224)
    result = estimate(config, 300, megapixels=2.0)
    assert result.feature_seconds == pytest.approx(300 * (1 / RATE + DECODE_SECONDS_PER_MEGAPIXEL * 2.0))
    # 10 folds x 5 strengths, then 10 folds x the chosen strength on each of 2 more dealings, the learning
    # curve's 3 shares on the first dealing's 10 folds, then the kept head
    assert result.head_seconds == pytest.approx((10 * 5 + 10 * 2 + 10 * 3 + 1) * HEAD_FIT_SECONDS)
    once = estimate(config.replace(cv_repeats=1, folds=5), 300, megapixels=2.0)
    assert once.head_seconds == pytest.approx((5 * 5 + 5 * 3 + 1) * HEAD_FIT_SECONDS)
    many = estimate(config, 2000, megapixels=2.0)  # above crossval.MANY_PHOTOS: 5 folds dealt once
    assert many.head_seconds == pytest.approx((5 * 5 + 5 * 3 + 1) * HEAD_FIT_SECONDS * 2000 / 300)
    assert result.fine_tune_seconds == 0
    assert result.total_seconds == pytest.approx(result.feature_seconds + result.head_seconds
                                                 + planning.FIXED_OVERHEAD_SECONDS)
    assert seconds_per_photo(config, rate_at_224=RATE) == pytest.approx(1 / RATE)


def test_time_grows_with_the_photos_and_the_square_of_the_size():
    small, big = estimate(TrainConfig(image_size=64)), estimate(TrainConfig(image_size=128))
    assert big.feature_seconds == pytest.approx(4 * small.feature_seconds)
    assert big.head_seconds == pytest.approx(small.head_seconds)  # the head does not see pixels
    more = estimate(TrainConfig(image_size=64), 200)
    assert more.feature_seconds == pytest.approx(2 * small.feature_seconds) and more.total_seconds > small.total_seconds
    assert estimate(TrainConfig(image_size=64), 100, megapixels=5).feature_seconds > small.feature_seconds


@pytest.mark.parametrize("views", [2, 5])
def test_time_grows_with_the_augmented_views(views):
    plain = estimate(TrainConfig(image_size=96))
    augmented = estimate(TrainConfig(image_size=96, augment=True, augmentation=Augmentation(views=views)))
    # every view is a VGG16 pass, and each augmented copy of the 100 photos is made first (Keras' random layers)
    made = augmented.feature_seconds - views * plain.feature_seconds
    assert made == pytest.approx((views - 1) * 100 * planning.AUGMENT_SECONDS)
    assert augmented.head_seconds >= plain.head_seconds
    assert estimate(TrainConfig(augmentation=Augmentation(views=4))) == estimate(TrainConfig())  # off: no views


def test_photos_already_cached_cost_nothing():
    config = TrainConfig(image_size=224, augment=True, augmentation=Augmentation(views=3))
    full = estimate(config, 100)
    assert estimate(config, 100, uncached_views=300) == full
    assert estimate(config, 100, uncached_views=150).feature_seconds == pytest.approx(full.feature_seconds / 2)
    cached = estimate(config, 100, uncached_views=0)
    assert cached.feature_seconds == 0 and cached.head_seconds == full.head_seconds


def test_faster_arithmetic_divides_the_vgg16_time(monkeypatch):
    config = TrainConfig(image_size=96, precision="float32")
    per_photo = planning.seconds_per_photo(config, rate_at_224=RATE)
    monkeypatch.setattr(planning, "cpu_supports_bfloat16", lambda: True)
    monkeypatch.setattr(planning, "int8_instructions", lambda: ["avx512_vnni"])
    assert planning.seconds_per_photo(config, rate_at_224=RATE, precision="bfloat16") == pytest.approx(per_photo)
    assert planning.seconds_per_photo(config, rate_at_224=RATE, precision="int8") == pytest.approx(per_photo / 4)
    monkeypatch.setattr(planning, "cpu_supports_bfloat16", lambda: False)  # emulated bf16 is slower
    monkeypatch.setattr(planning, "int8_instructions", lambda: ["avx2"])  # 7-bit int8 on AVX2: 2.7x (bench/)
    assert planning.seconds_per_photo(config, rate_at_224=RATE, precision="bfloat16") == pytest.approx(per_photo / 0.9)
    assert planning.seconds_per_photo(config, rate_at_224=RATE, precision="int8") == pytest.approx(per_photo / 2.7)


def test_fine_tuning_costs_more_the_more_blocks_and_epochs_it_trains():
    times = [estimate(TrainConfig(mode="fine-tune", fine_tune_blocks=b)).fine_tune_seconds for b in (1, 2, 3)]
    assert 0 < times[0] < times[1] < times[2]
    assert estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=0)).fine_tune_seconds == 0
    fits = 2 * planning.FINE_TUNE_FIT_SECONDS  # the hold-out's model and the kept one: built, compiled, traced
    ten = estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=10)).fine_tune_seconds - fits
    assert ten == pytest.approx(2 * (estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=5)).fine_tune_seconds
                                     - fits))
    # The boundary activations are a second pass, through the frozen blocks only; a hold-out replaces the folds.
    plain, tuned = estimate(TrainConfig()), estimate(TrainConfig(mode="fine-tune"))
    below_block5 = planning.vgg16_gflops(224, to_block=4) / planning.vgg16_gflops(224)
    assert tuned.feature_seconds == pytest.approx((1 + below_block5) * plain.feature_seconds)
    assert tuned.head_seconds < plain.head_seconds


def test_the_boundary_pass_beside_int8_is_priced_at_float_speed(monkeypatch):
    """int8 makes pooled features only: the boundary activations run in float32."""
    monkeypatch.setattr(planning, "int8_instructions", lambda: ["avx512_vnni"])
    plain = estimate(TrainConfig(), precision="int8")
    tuned = estimate(TrainConfig(mode="fine-tune"), precision="int8")
    boundary = 100 * planning.seconds_per_photo(TrainConfig(), rate_at_224=RATE, to_block=4, precision="float32")
    assert tuned.feature_seconds - plain.feature_seconds == pytest.approx(boundary)
    below_block5 = planning.vgg16_gflops(224, to_block=4) / planning.vgg16_gflops(224)
    assert boundary / plain.feature_seconds == pytest.approx(below_block5 * planning.speedup("int8"))  # not int8's


def test_best_counts_the_fine_tuning_candidates_boundary_pass_and_the_winners_refit():
    from quasar_core.planning import estimate_best_time

    plain = TrainConfig(image_size=96)
    tuned = plain.replace(mode="fine-tune", fine_tune_blocks=1, fine_tune_epochs=5)
    alone = estimate(plain)
    both = estimate_best_time([plain, tuned], 100, rate_at_224=RATE, precision="float32", megapixels=0.0)
    boundary = 100 * planning.seconds_per_photo(plain, rate_at_224=RATE, to_block=4)
    assert both.feature_seconds == pytest.approx(alone.feature_seconds + boundary)  # pooled features shared
    assert both.head_seconds == pytest.approx(2 * alone.head_seconds + estimate(tuned).head_seconds)


@pytest.mark.parametrize("rate", [0, -1.5])
def test_a_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ValueError, match=repr(rate)):
        estimate_training_time(TrainConfig(), 10, rate_at_224=rate)


def test_measured_forward_rate_is_positive(base):
    rate = planning.measure_forward_rate(base, image_size=32, batch=2)
    assert math.isfinite(rate) and rate > 0


# --------------------------------------------------------------------------- the plan


def test_plan_counts_cached_views_and_tables_other_sizes(dataset):
    config = TrainConfig(weights="none", image_size=96)
    fresh = plan(dataset, config, rate_at_224=RATE, precision=FLOAT32)
    again = plan(dataset, config, rate_at_224=RATE, precision=FLOAT32, cached_views=len(dataset))
    assert fresh.time.feature_seconds > 0 and again.time.feature_seconds == 0
    assert again.cached_views == 24 and fresh.n_photos == 24
    assert [row["image_size"] for row in fresh.sizes] == [64, 96, 128, 160, 224]
    seconds = [row["seconds"] for row in fresh.sizes]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)
    assert (fresh.precision, fresh.precision_reason) == ("float32", FLOAT32.reason)
    # 8 photos a class: 8 folds, as crossval.folds_for will make them
    assert fresh.method == ("8-fold cross-validation: every one of your 24 photos is tested once, 3 times over with "
                            "the photos dealt into new folds")
    odd = plan(dataset, config.replace(image_size=300), rate_at_224=RATE, precision=FLOAT32)
    assert 300 in [row["image_size"] for row in odd.sizes]


def test_the_chosen_sizes_row_is_the_estimate_itself(dataset):
    """Configure's caption and its table's chosen row are one number (cached features, Best's candidates)."""
    config = TrainConfig(weights="none", image_size=96)
    for chosen in (plan(dataset, config, rate_at_224=RATE, precision=FLOAT32, cached_views=len(dataset)),
                   plan(dataset, config, rate_at_224=RATE, precision=FLOAT32, cached_views=5),
                   plan(dataset, config, rate_at_224=RATE, precision=FLOAT32,
                        candidates=[config, config.replace(augment=True)])):
        [row] = [row for row in chosen.sizes if row["image_size"] == 96]
        assert row["seconds"] == chosen.time.total_seconds


def test_plan_says_when_a_holdout_measures_accuracy(dataset):
    tuned = plan(dataset, TrainConfig(mode="fine-tune"), rate_at_224=RATE, precision=FLOAT32)
    assert tuned.method == "a held-out test of about 5 of your 24 photos"
    many = plan(dataset, TrainConfig(max_cv_photos=10, holdout_fraction=0.5), rate_at_224=RATE, precision=FLOAT32)
    assert many.method == "a held-out test of about 12 of your 24 photos"


# --------------------------------------------------------------------------- memory


def test_memory_grows_with_size_views_photos_and_fine_tuning():
    config = TrainConfig(image_size=96)
    need = estimate_training_memory(config, 300)
    assert estimate_training_memory(config.replace(image_size=192), 300) > need
    assert estimate_training_memory(config.replace(augment=True, augmentation=Augmentation(views=4)), 300) > need
    assert estimate_training_memory(config, 3000) > need
    assert estimate_training_memory(config.replace(mode="fine-tune"), 300) > need
    assert need > 150 * 1024**2  # the job's fixed share


def test_memory_does_not_grow_with_the_photos_pixel_sizes():
    """Photos are streamed: each adds its features (2 KB a view, a few copies), never its pixels."""
    config = TrainConfig(image_size=224, augment=True, augmentation=Augmentation(views=2))
    per_photo = (estimate_training_memory(config, 20_000) - estimate_training_memory(config, 10_000)) / 10_000
    assert per_photo <= 2 * 1024 * 4 * 3 * 1.25
    assert per_photo < 224 * 224 * 3  # less than one decoded photo at the training size
    assert "megapixels" not in estimate_training_memory.__code__.co_varnames


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512")
    assert memory_limit_bytes() == 512 * 1024**2
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "0.5")
    assert memory_limit_bytes() == 512 * 1024
    monkeypatch.delenv(MEMORY_LIMIT_ENV)
    assert memory_limit_bytes() > 0


def test_check_memory_refuses_a_job_that_does_not_fit(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1")
    with pytest.raises(ResourceLimitError) as raised:
        check_memory(TrainConfig(image_size=224), 500)
    message = str(raised.value)
    assert "GB" in message and "smaller image size" in message
    assert isinstance(raised.value, QuasarError)


def test_check_memory_passes_when_there_is_room(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(1024 * 1024))  # a terabyte
    config = TrainConfig(image_size=224)
    assert check_memory(config, 500) == estimate_training_memory(config, 500)


def test_check_memory_counts_what_is_reserved(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(1024 * 1024))
    config = TrainConfig(image_size=96)
    check_memory(config, 100)
    with pytest.raises(ResourceLimitError):
        check_memory(config, 100, reserved_bytes=1024**4)


def test_a_memory_limit_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="'lots'"):
        check_memory(TrainConfig(), 10)


# --- the container's memory limit, from a fake cgroup file tree ------------------------------------------
LIMIT_2_7_GB = int(2.7 * 1024**3)
NO_LIMIT_V1 = "9223372036854771712"  # v1's sentinel for "no limit"


def _tree(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def test_a_limit_on_the_process_own_v1_cgroup_is_seen(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    cgroups = _tree(tmp_path / "sys", {"memory/memory.limit_in_bytes": NO_LIMIT_V1,
                                       "memory/process_api/abc/memory.limit_in_bytes": str(LIMIT_2_7_GB)})
    proc = _tree(tmp_path, {"cgroup": "5:devices:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/"}) / "cgroup"
    assert memory_limit_bytes(proc_cgroup=proc, cgroup_root=cgroups) == LIMIT_2_7_GB


def test_a_limit_on_a_v2_parent_cgroup_is_seen_and_the_smallest_wins(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    cgroups = _tree(tmp_path / "sys", {"memory.max": "max", "app/memory.max": str(LIMIT_2_7_GB),
                                       "app/worker/memory.max": "max",
                                       "app/worker/job/memory.max": str(4 * 1024**3)})
    proc = _tree(tmp_path, {"cgroup": "0::/app/worker/job"}) / "cgroup"
    assert memory_limit_bytes(proc_cgroup=proc, cgroup_root=cgroups) == LIMIT_2_7_GB


def test_a_v2_limit_under_unified_on_a_hybrid_system_is_seen(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    cgroups = _tree(tmp_path / "sys", {"unified/app/memory.max": str(LIMIT_2_7_GB)})
    proc = _tree(tmp_path, {"cgroup": "4:memory:/\n0::/app"}) / "cgroup"
    assert memory_limit_bytes(proc_cgroup=proc, cgroup_root=cgroups) == LIMIT_2_7_GB


def test_no_cgroup_limit_falls_back_to_the_machine(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    cgroups = _tree(tmp_path / "sys", {"memory.max": "max", "memory/memory.limit_in_bytes": NO_LIMIT_V1,
                                       "memory/a/memory.limit_in_bytes": NO_LIMIT_V1})
    proc = _tree(tmp_path, {"cgroup": "4:memory:/a\n0::/../../etc"}) / "cgroup"
    machine = memory_limit_bytes(proc_cgroup=tmp_path / "missing", cgroup_root=tmp_path / "none")
    assert memory_limit_bytes(proc_cgroup=proc, cgroup_root=cgroups) == machine > 0


def test_the_environment_overrides_the_cgroup(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512")
    cgroups = _tree(tmp_path / "sys", {"memory.max": str(LIMIT_2_7_GB)})
    assert memory_limit_bytes(proc_cgroup=tmp_path / "missing", cgroup_root=cgroups) == 512 * 1024**2


# --- what the estimate counts: the runtime, VGG16, TensorFlow when used, the preset's costliest candidate ---------
def test_memory_counts_the_runtime_and_vgg16_and_tensorflow_when_the_job_imports_it():
    plain = TrainConfig(image_size=224)
    int8 = estimate_training_memory(plain, 250, precision="int8")
    assert int8 > planning.RUNTIME_BYTES + planning.VGG16_BYTES  # the process, not only the job's share
    assert estimate_training_memory(plain, 250, precision="float32") - int8 == planning.TENSORFLOW_BYTES
    augmented = plain.replace(augment=True, augmentation=Augmentation(views=2))
    assert planning.uses_tensorflow(augmented, "int8") and planning.uses_tensorflow(plain.replace(mode="fine-tune"),
                                                                                      "int8")
    assert not planning.uses_tensorflow(plain, "int8") and planning.uses_tensorflow(plain, "bfloat16")
    assert estimate_training_memory(augmented, 250, precision="int8") - int8 >= planning.TENSORFLOW_BYTES


def test_best_counts_its_largest_candidate_and_every_candidates_features():
    plain = TrainConfig(image_size=224)
    larger = plain.replace(image_size=352)
    augmented = larger.replace(augment=True, augmentation=Augmentation(views=2))
    candidates = [plain, larger, plain.replace(augment=True, augmentation=Augmentation(views=2)), augmented]
    best = estimate_training_memory(plain, 2000, candidates=candidates, precision="int8")
    for config in candidates:
        assert best >= estimate_training_memory(config, 2000, precision="int8")
    assert best > estimate_training_memory(augmented, 2000, precision="int8")  # the others' features are kept too
    assert estimate_training_memory(plain, 2000, candidates=[plain], precision="int8") == \
        estimate_training_memory(plain, 2000, precision="int8")


def test_check_memory_counts_only_what_the_process_holds_beyond_the_runtime_and_vgg16(monkeypatch):
    config = TrainConfig(image_size=96, precision="float32")  # TensorFlow counted in the estimate
    need = estimate_training_memory(config, 100)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str((need + 50 * 1024**2) / 1024**2))
    monkeypatch.setattr(planning, "current_rss_bytes", lambda: planning.base_memory(True))  # a server with them
    assert check_memory(config, 100) == need  # what is loaded already is part of the estimate
    monkeypatch.setattr(planning, "current_rss_bytes", lambda: planning.base_memory(True) + 100 * 1024**2)
    with pytest.raises(ResourceLimitError):  # another 100 MB held beyond them: no longer fits
        check_memory(config, 100)
