"""The nvinfer emulation: its normalization is CaiT's up to the single scale, its scaling is
point-sampled nearest/bilinear, its geometries place the image where nvinfer would."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.data import IMAGENET_MEAN, IMAGENET_STD, preprocess
from pipeline.data.nvinfer import (
    net_scale_and_offsets,
    nvinfer_preprocess,
    resample,
    single_scale_only,
)


def test_offsets_exact_and_scale_within_1_33_percent_of_each_channel():
    scale, offsets = net_scale_and_offsets()
    np.testing.assert_allclose(offsets, [255 * m for m in IMAGENET_MEAN], rtol=1e-12)
    per_channel = [1 / (255 * s) for s in IMAGENET_STD]
    assert (
        max(abs(scale / c - 1) for c in per_channel) < 0.0134
    )  # 1.33 %: std 0.229 vs their mean 0.226


def test_resample_nearest_and_bilinear_on_known_pixels():
    ramp = np.repeat(np.array([[0, 100]], np.uint8)[..., None], 3, axis=2)  # (1, 2, 3)
    assert resample(ramp, 4, 1, "nearest")[0, :, 0].tolist() == [0, 0, 100, 100]
    # centres of 4 outputs over 2 pixels: -0.25, 0.25, 0.75, 1.25 → clamp, 25, 75, clamp
    assert resample(ramp, 4, 1, "bilinear")[0, :, 0].tolist() == [0, 25, 75, 100]
    flat = np.full((7, 9, 3), 77, np.uint8)
    assert (resample(flat, 5, 3, "bilinear") == 77).all()
    img = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    assert (resample(img, 8, 6, "bilinear") == img).all()  # same size: the identity


def test_geometries():
    wide = Image.new("RGB", (64, 32), (255, 255, 255))
    pad = nvinfer_preprocess(wide, 16, "pad", "bilinear")
    scale, offsets = net_scale_and_offsets()
    black = -scale * np.asarray(offsets, np.float32)
    white = scale * (255 - np.asarray(offsets, np.float32))
    np.testing.assert_allclose(pad[:, 0, 0], black, rtol=1e-6)  # top border: black
    np.testing.assert_allclose(pad[:, 8, 8], white, rtol=1e-6)  # centre: the image
    assert (np.abs(pad[0, 4:12, :] - white[0]) < 1e-5).all() and (
        np.abs(pad[0, :4] - black[0]) < 1e-5
    ).all()
    stretch = nvinfer_preprocess(wide, 16, "stretch", "nearest")
    np.testing.assert_allclose(
        stretch, np.broadcast_to(white[:, None, None], (3, 16, 16)), rtol=1e-6
    )


@pytest.mark.parametrize("filt", ["nearest", "bilinear"])
def test_crop_has_the_reference_geometry(filt):
    """A smooth image: crop differs from the exact path only by the filter and the scale."""
    y, x = np.mgrid[0:48, 0:80]
    rgb = np.stack([x * 3, y * 5, (x + y) * 2], -1).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(rgb)
    exact, crop = preprocess(img, 24), nvinfer_preprocess(img, 24, "crop", filt)
    assert np.abs(crop - exact).mean() < 0.1
    stretch = nvinfer_preprocess(img, 24, "stretch", filt)
    assert np.abs(stretch - exact).mean() > 2 * np.abs(crop - exact).mean()
    assert np.abs(single_scale_only(img, 24) - exact).max() < 0.035
