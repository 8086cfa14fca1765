"""Near-copies from features and from aligned pixels, on small synthetic photos.

The photos are smooth random grey fields, all variations of a few shared shapes (so they look
alike, as plain garments do); copies are cropped 4 % a side, shrunk to 85 % and noised, as
bench_photo_check plants them. The features are random (no help) unless a test gives them meaning.
"""

from __future__ import annotations

import numpy as np
import pytest

from quasar_core.data.images import resize
from tests.pictures import features_with_copies
from quasar_core.near_copies import (CROPS, LARGEST_GROUP, NEIGHBOURS, THUMBNAIL_SIDE, check_thumbnails, copy_groups,
                                     near_duplicates, power_normalise, thumbnails)

SIDE = 48


def smooth_field(rng, side=SIDE):
    coarse = rng.normal(0, 1, (6, 6, 1)).astype(np.float32)
    return resize(coarse, side, side)[..., 0]


def copy_of(photo, rng):
    h, w = photo.shape[:2]
    cut = photo[round(0.04 * h): h - round(0.04 * h), round(0.04 * w): w - round(0.04 * w)]
    small = resize(cut, round(0.85 * h), round(0.85 * w))
    return np.clip(small + rng.normal(0, 2, small.shape), 0, 255)


def photos_with_copies(seed=0, shapes=3, per_shape=20, copies=4):
    """Grey photos (H, W, 3) in 2 classes: look-alikes of `shapes` shapes, then `copies` copies of the first few."""
    rng = np.random.default_rng(seed)
    bases = [smooth_field(rng) for _ in range(shapes)]
    photos = []
    for number in range(shapes * per_shape):
        grey = bases[number % shapes] + 0.15 * smooth_field(rng)  # alike (best match 0.97-0.99), not the same
        photos.append(np.repeat((128 + 40 * grey)[..., None], 3, axis=-1))
    originals = list(range(copies))
    photos += [copy_of(photos[i], rng) for i in originals]
    labels = np.array([i % 2 for i in range(shapes * per_shape)] + [(i + (j == 0)) % 2 for j, i in enumerate(originals)])
    files = [f"photo_{i:03d}.png" for i in range(len(photos))]
    pairs = [(files[i], files[shapes * per_shape + j]) for j, i in enumerate(originals)]
    return photos, labels, files, pairs


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_cropped_copy_lines_up_with_its_original_at_some_crop():
    rng = np.random.default_rng(1)
    photo = np.repeat((128 + 40 * smooth_field(rng))[..., None], 3, axis=-1)
    mine, its_copy = thumbnails(photo), thumbnails(copy_of(photo, rng))
    assert mine.shape == (len(CROPS), THUMBNAIL_SIDE**2)
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1, rtol=1e-5)
    aligned = (mine @ its_copy.T).max()
    assert aligned > 0.99 and aligned > (mine[0] @ its_copy[0]) + 0.005  # better than uncropped against uncropped
    assert not thumbnails(np.full((10, 10, 3), 7.0)).any()  # a flat photo: nothing to match, no NaN


def test_copies_of_look_alike_photos_are_found_by_their_pixels_alone():
    photos, labels, files, pairs = photos_with_copies()
    z = unit_rows(np.random.default_rng(2).normal(0, 1, (len(photos), 16)))  # features tell nothing here
    thumbs = np.stack([thumbnails(p) for p in photos])
    found = near_duplicates(z, labels, ["ant", "bee"], files, thumbs=thumbs)
    for a, b in pairs:
        assert any({a, b} <= set(g.files) for g in found), (a, b)
    assert len(found) == len(pairs)  # the look-alikes are not copies, though above PIXEL_SIMILARITY
    assert len(set(found[0].classes)) == 2  # the copy filed under the other class comes first
    assert all(0.97 <= g.similarity <= 1 for g in found)
    assert near_duplicates(z, labels, ["ant", "bee"], files) == ()  # without the pixels: not seen


def test_features_find_copies_only_when_far_more_alike_than_the_look_alikes():
    rng = np.random.default_rng(3)
    spread = unit_rows(rng.normal(0, 1, (60, 32)))  # distinct photos
    dense = unit_rows(rng.normal(0, 1, 32) + 0.12 * rng.normal(0, 1, (30, 32)))  # all alike (~0.94)
    copy = unit_rows(spread[:1] + 0.03 * rng.normal(0, 1, (1, 32)))
    z = np.concatenate([spread, dense, copy])
    labels = np.zeros(len(z), np.int64)
    files = [f"p{i}" for i in range(len(z))]
    alike = dense @ dense.T
    assert np.median(alike[np.triu_indices(30, 1)]) > 0.925  # above the bare threshold ...
    found = near_duplicates(z, labels, ["only"], files)
    assert [g.files for g in found] == [("p0", f"p{len(z) - 1}")]  # ... yet only the copy is reported


def test_look_alikes_do_not_chain_into_one_group():
    rng = np.random.default_rng(4)
    a = unit_rows(rng.normal(0, 1, (1, 64)))
    step = unit_rows(rng.normal(0, 1, (1, 64)))
    chain = unit_rows(np.concatenate([a + t * 0.35 * step for t in range(3)]))  # a~b, b~c, a !~ c
    z = np.concatenate([chain, unit_rows(rng.normal(0, 1, (40, 64)))])
    sims = chain @ chain.T
    assert sims[0, 1] > 0.925 and sims[1, 2] > 0.925 and sims[0, 2] < 0.925
    found = near_duplicates(z, np.zeros(len(z), np.int64), ["only"], [f"p{i}" for i in range(len(z))])
    assert len(found) == 1 and len(found[0].files) == 2


def test_thumbnails_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"thumbnails.*n=3"):
        check_thumbnails(np.zeros((2, 3, 4)), 3)
    with pytest.raises(ValueError, match="pixels must be an"):
        thumbnails(np.zeros((5, 5)))
    assert check_thumbnails(None, 3) is None


def test_a_datasets_thumbnails_are_kept_in_the_feature_cache(dataset, tmp_path, monkeypatch):
    from quasar_core.features.cache import FeatureCache
    from quasar_core.near_copies import dataset_thumbnails

    cache = FeatureCache(tmp_path / "features")
    first = dataset_thumbnails(dataset, cache=cache)
    assert first.shape == (len(dataset), len(CROPS), THUMBNAIL_SIDE**2)
    np.testing.assert_allclose(first[3], thumbnails(dataset.pixels(3)), atol=1e-6)
    monkeypatch.setattr(type(dataset), "pixels", lambda self, index: pytest.fail("decoded again"))
    np.testing.assert_array_equal(dataset_thumbnails(dataset, cache=cache), first)


def test_the_folds_use_the_pixels_of_small_photos_only_and_do_without_them_when_a_photo_is_gone(monkeypatch):
    from quasar_core.data import Limits, load_uploads
    from quasar_core.errors import DatasetError
    from quasar_core.near_copies import PIXEL_EVIDENCE_SIDE, fold_thumbnails
    from tests.conftest import CLASSES, PER_CLASS, png_bytes, shape_image

    def photos(side):  # a dataset of its own: the shared one may be patched by other tests
        return load_uploads([(f"{label}_{n}.png", png_bytes(shape_image(label, n, side=side)), label)
                             for label in CLASSES for n in range(PER_CLASS)], limits=Limits())

    small = photos(PIXEL_EVIDENCE_SIDE - 24)
    assert fold_thumbnails(small).shape == (len(small), len(CROPS), THUMBNAIL_SIDE**2)
    assert fold_thumbnails(photos(PIXEL_EVIDENCE_SIDE + 16)) is None  # features find their copies; pixels would cost

    def gone(index):
        raise DatasetError(f"{small.samples[index].name} can no longer be read; load the photos again.")

    monkeypatch.setattr(small, "pixels", gone)
    assert fold_thumbnails(small) is None


# --------------------------------------------------------------------------- copy groups (the folds')


def test_copy_groups_are_the_photo_checks_groups_one_number_a_photo():
    features = features_with_copies(150)  # rows 150 and 151 copy row 0, row 152 copies row 3
    groups = copy_groups(features)
    assert groups.dtype == np.int64 and len(groups) == 153
    assert groups[150] == groups[151] == groups[0] == 0 and groups[152] == groups[3] == 3
    assert len(set(groups[:150])) == 150  # distinct photos stay apart
    names = [f"p{i}" for i in range(153)]
    found = near_duplicates(power_normalise(features), np.zeros(153, int), ["x"], names)
    assert sorted(d.files for d in found) == [("p0", "p150", "p151"), ("p3", "p152")]
    assert copy_groups(features[:1]).tolist() == [0] and copy_groups(features[:0]).tolist() == []


def test_copy_groups_see_pixels_too_when_given_thumbnails():
    photos, labels, files, pairs = photos_with_copies()
    features = np.abs(np.random.default_rng(2).normal(0, 1, (len(photos), 16)))  # features tell nothing here
    thumbs = np.stack([thumbnails(p) for p in photos])
    assert len(set(copy_groups(features))) == len(photos)
    groups = copy_groups(features, thumbs=thumbs)
    index = {name: i for i, name in enumerate(files)}
    for a, b in pairs:
        assert groups[index[a]] == groups[index[b]]
    assert len(set(groups)) == len(photos) - len(pairs)  # the look-alikes keep their own groups


def test_look_alike_features_are_not_fused_into_groups():
    """Features of tiny images or random weights make every photo alike: judged against each photo's own
    look-alikes, no pair stands out, so the folds keep every photo apart."""
    rng = np.random.default_rng(0)
    for noise in (0.3, 0.03):
        alike = (5 + rng.normal(0, noise, (60, 64))).astype(np.float32)
        assert np.bincount(copy_groups(alike)).max() == 1
    for noise in (0.001, 1e-6):  # alike to within float32 rounding: any pairs found are small, never a swarm
        alike = (5 + rng.normal(0, noise, (60, 64))).astype(np.float32)
        assert np.bincount(copy_groups(alike)).max() <= LARGEST_GROUP


def test_look_alike_photos_at_scale_cost_neighbours_not_pairs(monkeypatch):
    """12,000 synthetic photos that all looked alike took 1.8 GB once (a radius graph holds every pair)."""
    import sklearn.neighbors

    asked = []
    real = sklearn.neighbors.NearestNeighbors.kneighbors

    def counting(self, *args, **kwargs):
        asked.append(self.n_neighbors)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sklearn.neighbors.NearestNeighbors, "kneighbors", counting)
    monkeypatch.setattr(sklearn.neighbors.NearestNeighbors, "radius_neighbors_graph",
                        lambda *a, **k: pytest.fail("a radius graph holds n x n pairs when photos look alike"))
    alike = (5 + np.random.default_rng(0).normal(0, 1e-3, (6000, 64))).astype(np.float32)
    assert np.bincount(copy_groups(alike)).max() <= LARGEST_GROUP
    assert asked == [NEIGHBOURS]
