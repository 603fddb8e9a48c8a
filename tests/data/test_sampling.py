"""pipeline.data.sampling: seeded, class-balanced, disjoint subsets and their manifest hash."""

import collections
import logging
import os
import shutil
from pathlib import Path

import pytest

from pipeline.data import Sample, class_balanced_sample, manifest_hash, split_calib_parity
from tests.support.synthetic import write_synthetic_imagenet


def _fake(counts):
    """Samples (no files needed) with counts[c] images of class c."""
    return [Sample(Path(f"/d/{c}/{i}.jpg"), c) for c, k in enumerate(counts) for i in range(k)]


def _count(samples):
    return collections.Counter(s.label for s in samples)


def test_same_seed_same_sample_other_seed_other_sample():
    pool = _fake([20] * 10)
    a, b = class_balanced_sample(pool, 30, seed=0), class_balanced_sample(pool, 30, seed=0)
    assert a == b
    assert set(class_balanced_sample(pool, 30, seed=1)) != set(a)
    assert class_balanced_sample(list(reversed(pool)), 30, seed=0) == a  # input order irrelevant


def test_class_counts_differ_by_at_most_one():
    counts = _count(class_balanced_sample(_fake([5 + c for c in range(10)]), 37, seed=3))
    assert sum(counts.values()) == 37 and len(counts) == 10
    assert max(counts.values()) - min(counts.values()) <= 1


def test_small_classes_exhaust_then_the_rest_share():
    counts = _count(class_balanced_sample(_fake([2, 10, 10]), 20, seed=0))
    assert counts == {0: 2, 1: 9, 2: 9}


def test_no_duplicates_and_exclusion_respected():
    pool = _fake([10] * 4)
    excluded = pool[::3]
    out = class_balanced_sample(pool, 20, seed=0, exclude=excluded)
    assert len(set(out)) == 20 and not set(out) & set(excluded)
    by_path = class_balanced_sample(pool, 5, exclude=[str(s.path) for s in excluded])
    assert not set(by_path) & set(excluded)


def test_unlabelled_plain_seeded_sample():
    pool = [Sample(Path(f"/u/{i}.jpg"), None) for i in range(50)]
    a = class_balanced_sample(pool, 10, seed=5)
    assert len(set(a)) == 10 and a == class_balanced_sample(pool, 10, seed=5)
    assert a != class_balanced_sample(pool, 10, seed=6)


def test_asking_for_more_than_available_returns_all_with_a_warning(caplog):
    pool = _fake([3, 3])
    with caplog.at_level(logging.WARNING):
        out = class_balanced_sample(pool, 100, seed=0)
    assert sorted(out) == sorted(pool) and "only 6 available" in caplog.text


def test_calibration_and_parity_are_disjoint_balanced_and_parity_is_stable():
    pool = _fake([30] * 10)
    split = split_calib_parity(pool, n_calib=100, n_parity=50, seed=0)
    assert len(split.calib) == 100 and len(split.parity) == 50
    assert not set(split.calib) & set(split.parity)
    for part in split:
        c = _count(part)
        assert max(c.values()) - min(c.values()) <= 1
    # Changing the calibration size must not change the images parity is checked on.
    assert split_calib_parity(pool, 200, 50, seed=0).parity == split.parity
    assert split_calib_parity(pool, 100, 50, seed=1).parity != split.parity


def test_split_shrinks_calibration_when_images_run_out():
    split = split_calib_parity(_fake([5, 5]), n_calib=20, n_parity=4, seed=0)
    assert len(split.parity) == 4 and len(split.calib) == 6
    assert not set(split.calib) & set(split.parity)


@pytest.fixture
def images(tmp_path):
    return write_synthetic_imagenet(tmp_path / "a", 12, size=24, layout="synset")


def test_manifest_hash_ignores_order_and_location_with_content(tmp_path, images):
    root = tmp_path / "a"
    h = manifest_hash(images, root)
    assert h == manifest_hash(list(reversed(images)), root)
    shutil.copytree(root, tmp_path / "b")  # copytree keeps mtimes; content mode ignores them anyway
    moved = [Sample(tmp_path / "b" / s.path.relative_to(root), s.label) for s in images]
    for s in moved:
        os.utime(s.path, ns=(1, 1))
    assert manifest_hash(moved, tmp_path / "b") == h


def test_manifest_hash_changes_with_content_selection_or_label(tmp_path, images):
    root = tmp_path / "a"
    h = manifest_hash(images, root)
    assert manifest_hash(images[:-1], root) != h
    assert manifest_hash([images[0]._replace(label=999)] + images[1:], root) != h
    data = images[0].path.read_bytes()
    images[0].path.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    assert manifest_hash(images, root) != h


def test_stat_mode_hash_tracks_mtime(tmp_path, images):
    root = tmp_path / "a"
    h = manifest_hash(images, root, content=False)
    assert h == manifest_hash(images, root, content=False)
    os.utime(images[0].path, ns=(10**18, 10**18))
    assert manifest_hash(images, root, content=False) != h
