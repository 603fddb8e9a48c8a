"""pipeline.data.preprocess: the one transform every stage shares."""

import numpy as np
import pytest
from PIL import Image

from pipeline.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CorruptImageError,
    load_image,
    preprocess,
)
from pipeline.errors import UserError


def _normalized(rgb):
    """The reference arithmetic of paddle.vision ToTensor + Normalize, in float32."""
    v = np.asarray(rgb, np.float32) / np.float32(255)
    return (v - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


@pytest.mark.parametrize("colour", [(200, 100, 50), (0, 0, 0), (255, 255, 255)])
def test_constant_colour_maps_to_exact_normalized_value(colour):
    x = preprocess(Image.new("RGB", (57, 31), colour), 16)
    expected = _normalized(colour)
    for c in range(3):
        assert np.all(x[c] == expected[c]), (c, np.unique(x[c]), expected[c])
    # and the float32 result is the float64 formula to rounding
    exact = (np.asarray(colour) / 255 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    np.testing.assert_allclose(x[:, 0, 0], exact, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "wh,size,crop_pct",
    [((40, 30), 32, 1.0), ((30, 40), 24, 0.875), ((224, 224), 224, 1.0), ((8, 8), 32, 1.0)],
)
def test_output_shape_dtype_contiguity(wh, size, crop_pct):
    x = preprocess(Image.new("RGB", wh, (1, 2, 3)), size, crop_pct)
    assert x.shape == (3, size, size) and x.dtype == np.float32 and x.flags.c_contiguous


def test_short_side_bicubic_resize_then_center_crop_on_non_square():
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # w=60, h=40
    x = preprocess(img, 20)
    # short side 40 → 20, long side 60 → 30; the crop keeps columns 5…24
    manual = np.asarray(img.resize((30, 20), Image.BICUBIC).crop((5, 0, 25, 20)), np.float32)
    np.testing.assert_array_equal(x, _normalized(manual).transpose(2, 0, 1))


def test_crop_pct_resizes_to_size_over_crop_pct_first():
    rng = np.random.default_rng(2)
    img = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    x = preprocess(img, 20, crop_pct=0.769)
    # short 40 → int(20 / 0.769) = 26, long → int(26 * 60 / 40) = 39; crop offsets are rounded
    # like paddle.vision's: left round(9.5) = 10 (not 9), top round(3.0) = 3
    manual = np.asarray(img.resize((39, 26), Image.BICUBIC).crop((10, 3, 30, 23)), np.float32)
    np.testing.assert_array_equal(x, _normalized(manual).transpose(2, 0, 1))


def test_bit_identical_to_paddle_vision_eval_transform():
    T = pytest.importorskip("paddle.vision.transforms")
    rng = np.random.default_rng(3)
    cases = [((50, 37), 32, 1.0), ((37, 50), 32, 0.875), ((300, 200), 224, 1.0)]
    for (w, h), size, crop_pct in cases:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ref = T.Compose(
            [
                T.Resize(int(size / crop_pct), "bicubic"),
                T.CenterCrop(size),
                T.ToTensor(),
                T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ]
        )
        ref = ref(img).numpy()
        np.testing.assert_array_equal(preprocess(img, size, crop_pct), ref)


def test_bad_crop_pct_is_a_user_error():
    with pytest.raises(UserError, match="crop_pct"):
        preprocess(Image.new("RGB", (8, 8)), 8, crop_pct=1.5)


def test_rgb_jpeg_loads_as_rgb(image_kinds):
    img = load_image(image_kinds["rgb_jpeg"])
    assert img.mode == "RGB" and img.size == (40, 30)


def test_grayscale_replicated_to_three_equal_channels(image_kinds):
    a = np.asarray(load_image(image_kinds["gray_jpeg"]))
    assert a.shape == (30, 40, 3)
    assert np.all(a[..., 0] == a[..., 1]) and np.all(a[..., 1] == a[..., 2])
    assert abs(int(a[..., 0].mean()) - 90) <= 1


def test_cmyk_jpeg_converted_to_rgb_colour(image_kinds):
    a = np.asarray(load_image(image_kinds["cmyk_jpeg"]), dtype=int)
    assert a.shape == (30, 40, 3)
    np.testing.assert_allclose(a.reshape(-1, 3).mean(0), (255, 0, 0), atol=8)


def test_png_alpha_is_dropped_not_composited(image_kinds):
    # Fully transparent (10, 20, 30): compositing on white would give (255, 255, 255).
    a = np.asarray(load_image(image_kinds["rgba_png"]))
    assert a.shape == (30, 40, 3)
    assert tuple(a[0, 0]) == (10, 20, 30)


def test_palette_png_expanded(image_kinds):
    assert tuple(np.asarray(load_image(image_kinds["palette_png"]))[5, 5]) == (200, 100, 50)


def test_16_bit_grayscale_scaled_to_8_bit(image_kinds):
    assert tuple(np.asarray(load_image(image_kinds["gray16_png"]))[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_corrupt_files_raise_a_specific_user_error(image_kinds, kind):
    with pytest.raises(CorruptImageError) as info:
        load_image(image_kinds[kind])
    assert isinstance(info.value, UserError)
    assert info.value.path == str(image_kinds[kind]) and str(image_kinds[kind]) in str(info.value)


def test_missing_file_is_a_corrupt_image_error(tmp_path):
    with pytest.raises(CorruptImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")
