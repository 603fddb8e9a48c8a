"""The trained `cait_digits` fixture: its data split, its files on disk, its committed weights."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import ImageFolderDataset, iter_batches
from tests.support.digits import digit_indices, load_digits_split, write_digits_split

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def test_split_is_fixed_stratified_and_disjoint():
    x, y = load_digits_split("train")
    xh, yh = load_digits_split("heldout")
    assert x.shape == (1437, 3, 32, 32) and xh.shape == (360, 3, 32, 32)
    assert x.dtype == xh.dtype == np.float32 and y.dtype == np.int64
    assert not set(digit_indices("train")) & set(digit_indices("heldout"))
    counts = np.bincount(yh, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified 20 % of ~180 per class
    # gray replicated to RGB, then ImageNet-normalised: channel means differ, content identical
    np.testing.assert_allclose(x[:, 0] * 0.229 + 0.485, x[:, 1] * 0.224 + 0.456, atol=1e-5)


def test_written_pngs_read_back_bit_identical(tmp_path):
    written = write_digits_split(tmp_path, "heldout")
    ds = ImageFolderDataset.from_dir(tmp_path)
    assert ds.layout == "folders" and ds.class_names == tuple(str(d) for d in range(10))
    xh, yh = load_digits_split("heldout")
    position = {int(i): k for k, i in enumerate(digit_indices("heldout"))}
    order = [position[int(s.path.stem)] for s in ds]
    images = np.concatenate([b.images for b in iter_batches(ds.samples, 32, 128)])
    np.testing.assert_array_equal(images, xh[order])
    assert [s.label for s in ds] == yh[order].tolist() == [s.label for s in written]


def test_fixture_metadata_matches_weights():
    meta = json.loads((FIXTURES / "cait_digits.json").read_text())
    from pipeline.artifacts import sha256_file

    assert sha256_file(FIXTURES / meta["weights"]) == meta["weights_sha256"]
    assert meta["split"]["seed"] == 0 and meta["heldout_top1"] >= 0.95


def test_committed_weights_reach_95_percent_heldout_top1():
    paddle = pytest.importorskip("paddle")
    from pipeline.models import build_model
    from pipeline.presets import get_preset
    from pipeline.weights import load_weights

    model = build_model(get_preset("cait_digits"))
    load_weights(model, FIXTURES / "cait_digits.pdparams")
    xh, yh = load_digits_split("heldout")
    with paddle.no_grad():
        logits = np.concatenate(
            [model(paddle.to_tensor(xh[i : i + 120])).numpy() for i in range(0, len(xh), 120)]
        )
    acc = float((logits.argmax(1) == yh).mean())
    assert acc >= 0.95
    recorded = json.loads((FIXTURES / "cait_digits.json").read_text())["heldout_top1"]
    assert abs(acc - recorded) <= 1 / len(yh) + 1e-9  # the same model the script measured
