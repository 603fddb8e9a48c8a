"""scikit-learn's handwritten digits as the trained test fixture's dataset (`cait_digits`).

Each 8×8 digit (ink 0…16) becomes an 8-bit grayscale image and goes through the *shared*
preprocessing (`preprocess(img, 32)`: gray → RGB, bicubic upsample to 32 px, ImageNet mean/std).
`write_digits_split` writes the same 8×8 images losslessly as PNGs in class folders `0`…`9`, so
reading them back through `ImageFolderDataset` + `iter_batches` gives bit-identical tensors: the
CLI's eval and calibration see exactly what training saw.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.dataset import Sample
from pipeline.data.preprocess import preprocess
from pipeline.errors import UserError

SPLIT_SEED = 0
HELDOUT_FRACTION = 0.2
IMAGE_SIZE = 32
SPLITS = ("train", "heldout")


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UserError("the digits fixture needs scikit-learn: pip install scikit-learn") from None
    X, y = load_digits(return_X_y=True)
    pixels = np.rint(X.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    train, heldout = train_test_split(
        np.arange(len(y)), test_size=HELDOUT_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    return pixels, y.astype(np.int64), {"train": np.sort(train), "heldout": np.sort(heldout)}


def digit_indices(split: str) -> np.ndarray:
    """Indices into sklearn's `load_digits()` of a split, ascending."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return _digits()[2][split]


def digit_image(index: int) -> Image.Image:
    """Digit `index` of `load_digits()` as an 8×8 8-bit grayscale image (ink bright)."""
    return Image.fromarray(_digits()[0][index], mode="L")


def load_digits_split(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, 3, 32, 32), labels int64 (N,)) of `split`, as training used them."""
    idx = digit_indices(split)
    images = np.stack([preprocess(digit_image(i), IMAGE_SIZE) for i in idx])
    return images, _digits()[1][idx].copy()


def write_digits_split(
    root: str | os.PathLike, split: str = "heldout", fmt: str = "png"
) -> list[Sample]:
    """Write `split` as `root/<digit>/<index>.<fmt>` (class folders sort to labels 0…9).
    PNG is lossless (tensors identical to `load_digits_split`); JPEG exercises the lossy path."""
    ext = {"png": "png", "jpeg": "jpg", "jpg": "jpg"}.get(fmt.lower())
    if ext is None:
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    root = Path(root)
    labels = _digits()[1]
    samples = []
    for i in digit_indices(split):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:04d}.{ext}"
        digit_image(i).save(path, **({"quality": 95} if ext == "jpg" else {}))
        samples.append(Sample(path, int(labels[i])))
    return sorted(samples, key=lambda s: s.path)
