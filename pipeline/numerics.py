"""Inputs and comparisons shared by every parity check (export, fuse --verify, precision, ladder)."""

from __future__ import annotations

import numpy as np

from pipeline.data.preprocess import IMAGENET_MEAN, IMAGENET_STD

_MEAN = np.asarray(IMAGENET_MEAN, np.float32)
_STD = np.asarray(IMAGENET_STD, np.float32)


def sample_images(batch: int, size: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Real-looking normalized images: smooth low-frequency colour fields plus mild texture.

    Zeros or white noise would hide wiring errors (every token alike) or saturate nothing; these
    have ImageNet-like statistics after normalization.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((batch, channels, size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for b in range(batch):
        img = np.zeros((channels, size, size), np.float32)
        for _ in range(6):  # a few random plane waves per channel → smooth structure
            fy, fx = rng.uniform(-6, 6, 2)
            phase = rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(0.05, 0.2, (channels, 1, 1)).astype(np.float32)
            img += amp * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        img += rng.uniform(0.3, 0.7, (channels, 1, 1)).astype(np.float32)
        img += rng.normal(0, 0.03, img.shape).astype(np.float32)
        img = np.clip(img, 0, 1)
        mean, std = _MEAN[:channels], _STD[:channels]
        out[b] = (img - mean[:, None, None]) / std[:, None, None]
    return out


def compare(ref: np.ndarray, out: np.ndarray) -> dict:
    """Logit-level agreement of `out` with `ref` (both (B, classes))."""
    ref = ref.astype(np.float64)
    out = out.astype(np.float64)
    diff = np.abs(ref - out)
    cos = np.sum(ref * out, axis=1) / (
        np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1) + 1e-30
    )
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "cosine_min": float(cos.min()),
        "top1_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
    }
