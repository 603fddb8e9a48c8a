"""Inputs and comparisons shared by every parity check (export, fuse --verify, precision, ladder)."""

from __future__ import annotations

import numpy as np

from pipeline.data.preprocess import IMAGENET_MEAN, IMAGENET_STD

# fp32 parity: ONNX Runtime vs Paddle after export, fused vs unfused after fuse, at batch 1 and 3
# (a batch of 3 catches a batch axis folded into a constant; 1 alone would not).
PARITY_TOL = 1e-4
PARITY_BATCHES = (1, 3)

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
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    diff = np.abs(ref64 - out64)
    cos = np.sum(ref64 * out64, 1) / (
        np.linalg.norm(ref64, axis=1) * np.linalg.norm(out64, axis=1) + 1e-30
    )
    k = min(5, ref.shape[1])
    t5r = np.argsort(-ref, axis=1)[:, :k]
    t5o = np.argsort(-out, axis=1)[:, :k]
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "top1_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
        "top5_overlap": float(np.mean([len(set(a) & set(b)) / k for a, b in zip(t5r, t5o)])),
    }
