"""Seeded, class-balanced subsets and the hash that names them.

The calibration set and the parity set are drawn from the same images, so they must be disjoint
(calibrating on the images you then check would flatter INT8). Parity is drawn first, so changing
the calibration size never changes the parity images, and parity results stay comparable.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline.artifacts import sha256_file
from pipeline.data.dataset import Sample

log = logging.getLogger(__name__)

Seed = int | Sequence[int]


def class_balanced_sample(
    samples: Sequence[Sample],
    n: int,
    seed: Seed = 0,
    exclude: Collection[Sample | str | os.PathLike] = (),
) -> list[Sample]:
    """`n` samples drawn without replacement, the same for the same inputs and seed.

    Labelled: round-robin over the classes (each class shuffled, the class order shuffled), so
    class counts differ by at most one while classes still have images. Unlabelled (any label
    None): a plain seeded sample. Fewer than `n` available → all of them, with a warning.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    skip = {Path(e.path if isinstance(e, Sample) else e) for e in exclude}
    pool = sorted((s for s in samples if s.path not in skip), key=lambda s: str(s.path))
    rng = np.random.default_rng(seed)
    if n >= len(pool):
        if n > len(pool):
            log.warning("data: asked for %d images, only %d available; using all", n, len(pool))
        return [pool[i] for i in rng.permutation(len(pool))]
    if any(s.label is None for s in pool):
        return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in pool:
        by_class[s.label].append(s)
    queues = [
        [group[i] for i in rng.permutation(len(group))]
        for group in (by_class[c] for c in sorted(by_class))
    ]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    out: list[Sample] = []
    depth = 0
    while len(out) < n:
        for q in queues:
            if depth < len(q):
                out.append(q[depth])
                if len(out) == n:
                    break
        depth += 1
    return out


class CalibParitySplit(NamedTuple):
    calib: list[Sample]
    parity: list[Sample]


def split_calib_parity(
    samples: Sequence[Sample], n_calib: int, n_parity: int, seed: int = 0
) -> CalibParitySplit:
    """Disjoint, class-balanced calibration and parity sets (parity drawn first; see module doc)."""
    parity = class_balanced_sample(samples, n_parity, seed=(seed, 1))
    calib = class_balanced_sample(samples, n_calib, seed=(seed, 0), exclude=parity)
    return CalibParitySplit(calib, parity)


def manifest_hash(
    samples: Sequence[Sample], root: str | os.PathLike | None = None, content: bool = True
) -> str:
    """sha256 naming a selection of images: sorted relative paths, labels, and file contents
    (`content=True`, robust to copies that reset mtimes) or sizes + mtimes (`content=False`,
    cheap for whole datasets). Independent of sample order and of where `root` lives.
    Preprocessing settings are not included: the caller adds them to its own cache key.
    """
    root = Path(root) if root is not None else None
    h = hashlib.sha256()
    for rel, s in sorted(((_rel(s.path, root), s) for s in samples), key=lambda t: t[0]):
        st = os.stat(s.path)
        token = sha256_file(s.path) if content else f"{st.st_size}:{st.st_mtime_ns}"
        h.update(f"{rel}\t{s.label}\t{token}\n".encode())
    return h.hexdigest()


def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()
