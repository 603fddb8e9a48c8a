"""DeepStream `nvinfer`'s preprocessing, emulated on the CPU to measure what it costs CaiT.

nvinfer scales the frame (or object) to the network's size with NvBufSurfTransform, keeps 8-bit
RGB, then computes y = net-scale-factor · (x − offsets[c]): one scale for all channels, where
CaiT's transform (`preprocess`) divides by a per-channel std after a bicubic short-side resize and
a centre crop. What is emulated here, and how:

- normalization: offsets = 255·mean (exact), net-scale-factor = 1 / (255·σ̄) with σ̄ the mean of
  the three stds (each channel's scale off by at most 1.33 %);
- geometry: "stretch" (nvinfer's default: the whole image to S×S, aspect ratio lost), "pad"
  (`maintain-aspect-ratio=1` + `symmetric-padding=1`: long side to S, centred, black borders),
  "crop" (short side to S and a centre crop, as the reference — nvinfer cannot crop by itself: it
  has to be configured upstream, e.g. a source crop in nvvideoconvert or an nvdspreprocess ROI);
- `scaling-filter`: 0 nearest, 1 bilinear, point-sampled at pixel centres without antialiasing
  (GPU resamplers do not prefilter), rounded back to 8 bits before the normalization.

The JPEG decoder (nvjpeg vs libjpeg) and NV12 → RGB colour conversion of a video pipeline are
not emulated; docs/serving.md lists what the figures therefore leave out.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, _to_rgb, resize_short_crop
from pipeline.errors import UserError

GEOMETRIES = ("stretch", "pad", "crop")
SCALING_FILTERS = {"nearest": 0, "bilinear": 1}  # nvinfer's `scaling-filter` values


def net_scale_and_offsets() -> tuple[float, tuple[float, float, float]]:
    """(net-scale-factor, offsets) closest to CaiT's per-channel normalization."""
    sigma = float(np.mean(IMAGENET_STD))
    return 1.0 / (255.0 * sigma), tuple(255.0 * m for m in IMAGENET_MEAN)


def _normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) → float32 (3, S, S), nvinfer style: one scale, per-channel offsets."""
    scale, offsets = net_scale_and_offsets()
    x = rgb.astype(np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(
        np.float32(scale) * (x - np.asarray(offsets, np.float32).reshape(3, 1, 1))
    )


def _axis(n_in: int, n_out: int, filt: str):
    """Source indices (and weights) of `n_out` samples over `n_in` pixels, centres aligned."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out)
    if filt == "nearest":
        return np.clip(np.floor(pos).astype(np.int64), 0, n_in - 1), None, None
    pos = np.clip(pos - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def resample(rgb: np.ndarray, width: int, height: int, filt: str) -> np.ndarray:
    """Point-sampled nearest/bilinear resize of uint8 (H, W, 3) to (height, width, 3), uint8."""
    if filt not in SCALING_FILTERS:
        raise UserError(f"scaling filter must be one of {', '.join(SCALING_FILTERS)}, got {filt!r}")
    ylo, yhi, fy = _axis(rgb.shape[0], height, filt)
    xlo, xhi, fx = _axis(rgb.shape[1], width, filt)
    if filt == "nearest":
        return rgb[ylo][:, xlo]
    a = rgb.astype(np.float32)
    top = a[ylo][:, xlo] * (1 - fx)[None, :, None] + a[ylo][:, xhi] * fx[None, :, None]
    bot = a[yhi][:, xlo] * (1 - fx)[None, :, None] + a[yhi][:, xhi] * fx[None, :, None]
    out = top * (1 - fy)[:, None, None] + bot * fy[:, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def nvinfer_preprocess(
    img: Image.Image, size: int, geometry: str = "stretch", filt: str = "bilinear"
) -> np.ndarray:
    """RGB image → float32 (3, size, size) as nvinfer would feed the engine (see module doc)."""
    if geometry not in GEOMETRIES:
        raise UserError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    rgb = np.asarray(img if img.mode == "RGB" else _to_rgb(img))
    h, w = rgb.shape[:2]
    if geometry == "stretch":
        out = resample(rgb, size, size, filt)
    elif geometry == "pad":
        s = size / max(w, h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        out = np.zeros((size, size, 3), np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        out[top : top + nh, left : left + nw] = resample(rgb, nw, nh, filt)
    else:  # crop: the reference's geometry (same rounding), another filter
        short = size
        nw, nh = (short, int(short * h / w)) if w < h else (int(short * w / h), short)
        scaled = resample(rgb, nw, nh, filt)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        out = scaled[top : top + size, left : left + size]
    return _normalize(out)


def single_scale_only(img: Image.Image, size: int) -> np.ndarray:
    """The reference geometry and bicubic filter with nvinfer's single-scale normalization: the
    cost of the normalization approximation alone."""
    rgb = img if img.mode == "RGB" else _to_rgb(img)
    return _normalize(np.asarray(resize_short_crop(rgb, size)))
