"""pipeline.data.batches: streamed, preprocessed batches; corrupt files skipped and counted."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import Sample, iter_batches, load_image, preprocess
from pipeline.errors import UserError
from tests.support.synthetic import write_synthetic_imagenet


def test_batches_match_preprocess_and_corrupt_files_are_skipped_and_counted(tmp_path, image_kinds):
    good = write_synthetic_imagenet(tmp_path / "g", 6, size=40, layout="flat")
    samples = (
        good[:3]
        + [Sample(image_kinds["corrupt"], 0)]
        + good[3:]
        + [Sample(image_kinds["truncated"], 1)]
    )
    stream = iter_batches(samples, size=24, batch_size=4)
    assert len(stream) == 2
    batches = list(stream)
    # refilled past the corrupt file: full batches first, then the rest
    assert [b.images.shape for b in batches] == [(4, 3, 24, 24), (2, 3, 24, 24)]
    assert [p for b in batches for p in b.paths] == [s.path for s in good]
    assert np.concatenate([b.labels for b in batches]).tolist() == [s.label for s in good]
    assert batches[0].labels.dtype == np.int64
    for b in batches:
        for x, p in zip(b.images, b.paths):
            np.testing.assert_array_equal(x, preprocess(load_image(p), 24))
    assert [p for p, _ in stream.skipped] == [image_kinds["corrupt"], image_kinds["truncated"]]
    assert stream.images_yielded == 6


def test_unlabelled_samples_give_no_labels(tmp_path, image_kinds):
    stream = iter_batches(
        [Sample(image_kinds["rgb_jpeg"], None), Sample(image_kinds["gray_jpeg"], None)],
        size=16,
        batch_size=8,
    )
    (batch,) = list(stream)
    assert batch.labels is None and batch.images.shape == (2, 3, 16, 16)


def test_every_image_kind_flows_through(image_kinds):
    samples = [Sample(p, None) for k, p in image_kinds.items() if k not in ("corrupt", "truncated")]
    stream = iter_batches(samples, size=16, batch_size=3)
    total = sum(len(b.paths) for b in stream)
    assert total == len(samples) and stream.skipped == []


def test_threads_give_the_same_batches(tmp_path):
    samples = write_synthetic_imagenet(tmp_path, 10, size=48, layout="synset")
    one = list(iter_batches(samples, 32, 4, workers=1))
    two = list(iter_batches(samples, 32, 4, workers=2))
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.images, b.images)
        assert a.paths == b.paths


def test_stream_is_lazy_and_batches_are_not_reused(tmp_path):
    samples = write_synthetic_imagenet(tmp_path, 8, size=32, layout="flat")
    late = Path(tmp_path / "moved-away.JPEG")
    shutil.move(samples[-1].path, late)  # would be a skip, if it were read eagerly
    stream = iter_batches(samples, 16, 2)
    it = iter(stream)
    first, second = next(it), next(it)
    assert stream.skipped == []  # only what was asked for has been read
    assert not np.shares_memory(first.images, second.images)
    rest = list(it)
    assert len(stream.skipped) == 1 and sum(len(b.paths) for b in rest) == 3


def test_nothing_readable_is_a_user_error(image_kinds):
    stream = iter_batches([Sample(image_kinds["corrupt"], None)], size=16, batch_size=2)
    with pytest.raises(UserError, match="none of the 1 images could be read"):
        list(stream)
