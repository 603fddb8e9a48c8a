"""Preprocessed batches streamed from disk: memory stays one batch, whatever the dataset size.

Corrupt files are skipped, logged and counted on the stream (`stream.skipped`), so a calibration
or evaluation over 50,000 files survives one bad JPEG and still says that it met one. Batches are
refilled past skipped files, so every batch but the last has exactly `batch_size` images (static
engine shapes stay usable). A stream where no file at all is readable raises a UserError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.data.dataset import Sample
from pipeline.data.preprocess import CorruptImageError, load_image, preprocess
from pipeline.errors import UserError

log = logging.getLogger(__name__)

_LOGGED_SKIPS = 5  # then only the final count: 50,000 warnings help nobody


class Batch(NamedTuple):
    images: np.ndarray  # float32 (b, 3, size, size)
    labels: np.ndarray | None  # int64 (b,), None for unlabelled data
    paths: list[Path]


class BatchStream:
    """Iterable of `Batch`; after (or during) iteration `skipped` lists `(path, reason)` of the
    files that could not be read. `len()` is the batch count if no file is skipped (an upper bound,
    good for a tqdm total)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        batch_size: int,
        crop_pct: float = 1.0,
        workers: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.samples, self.size, self.batch_size = list(samples), size, batch_size
        self.crop_pct, self.workers = crop_pct, max(1, workers)
        self.labelled = bool(self.samples) and all(s.label is not None for s in self.samples)
        self.skipped: list[tuple[Path, str]] = []
        self.images_yielded = 0

    def __len__(self) -> int:
        return -(-len(self.samples) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        self.skipped, self.images_yielded = [], 0
        buf = np.empty((self.batch_size, 3, self.size, self.size), dtype=np.float32)
        labels, paths = [], []
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        try:
            # Decode one batch-sized chunk at a time (PIL releases the GIL while decoding).
            for start in range(0, len(self.samples), self.batch_size):
                chunk = self.samples[start : start + self.batch_size]
                arrays = pool.map(self._load, chunk) if pool else map(self._load, chunk)
                for s, x in zip(chunk, arrays):
                    if x is None:
                        continue
                    buf[len(paths)] = x
                    labels.append(s.label)
                    paths.append(s.path)
                    if len(paths) == self.batch_size:
                        yield self._emit(buf, labels, paths)
                        buf = np.empty_like(buf)  # the consumer may keep the previous batch
                        labels, paths = [], []
            if paths:
                yield self._emit(buf[: len(paths)], labels, paths)
            if self.samples and not self.images_yielded:
                path, reason = self.skipped[0]
                raise UserError(
                    f"none of the {len(self.samples)} images could be read "
                    f"(first: {path}: {reason})"
                )
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
            if self.skipped:
                log.warning(
                    "data: skipped %d unreadable image(s) of %d",
                    len(self.skipped),
                    len(self.samples),
                )

    def _load(self, s: Sample) -> np.ndarray | None:
        try:
            return preprocess(load_image(s.path), self.size, self.crop_pct)
        except CorruptImageError as e:
            self.skipped.append((Path(s.path), e.reason))
            if len(self.skipped) <= _LOGGED_SKIPS:
                log.warning("data: skipping %s: %s", s.path, e.reason)
            return None

    def _emit(self, images: np.ndarray, labels: list, paths: list[Path]) -> Batch:
        self.images_yielded += len(paths)
        y = np.asarray(labels, dtype=np.int64) if self.labelled else None
        return Batch(images, y, list(paths))


def iter_batches(
    samples: Sequence[Sample], size: int, batch_size: int, crop_pct: float = 1.0, workers: int = 1
) -> BatchStream:
    """Stream float32 (b, 3, size, size) batches of `samples` through the shared preprocessing."""
    return BatchStream(samples, size, batch_size, crop_pct, workers)
