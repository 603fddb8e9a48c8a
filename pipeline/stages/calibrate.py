"""INT8/FP8 calibration: streamed activation statistics (ONNX Runtime, CPU) and three ways to pick amax.

Why our own collector instead of `onnxruntime.quantization.create_calibrator` (measured here):
its Entropy method with default bins returns exactly the MinMax scales, a real 2048-bin entropy
run took 403 s and 3 GB for 16 images of xxs_24 (it keeps every batch's tensors), and switching the
method re-runs the images. Here one pass over the images keeps, per tensor, only |x|max and a
≤ 2048-bin histogram of |x| (memory flat in the number of images); `max`, `percentile` and
`entropy` are then computed from the same statistics, which `calib.json` caches keyed by the model
hash, the image manifest and the preprocessing, so changing the method never touches the images.

Histogram: symmetric quantization only looks at |x|. Bins have a power-of-two width; when a
batch exceeds the range the histogram grows, and whenever it would exceed `BINS` bins, adjacent
pairs are merged (width doubles). With power-of-two widths the merge is exact (x / 2^k is exact in
floating point), so the final histogram is the one a single pass at the final width would give:
independent of batch size and image order, and never more than `BINS` bins.

Entropy is TensorRT's calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017; the same
algorithm as pytorch-quantization's `_compute_amax_entropy`): for every candidate threshold bin
i ≥ 128, P = hist[:i] with the clipped tail added to its last bin, Q = hist[:i] quantized to 128
levels and expanded back over P's non-empty bins; amax = the edge minimizing KL(P‖Q).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import onnx_hash, write_json_atomic
from pipeline.data import iter_batches
from pipeline.errors import UserError
from pipeline.onnx_io import ort_session

log = logging.getLogger(__name__)

BINS = 2048
QUANT_LEVELS = 128  # int8 symmetric: 0…127 on |x|
ENTROPY_START = 128
METHODS = ("entropy", "percentile", "max")
DEFAULT_PERCENTILE = 99.99
COLLECTOR_VERSION = 2  # bump when the statistics change meaning (invalidates calib.json)


class AbsHistogram:
    """Streaming histogram of |x| with at most `BINS` bins of equal width (see module doc)."""

    def __init__(self, bins: int = BINS):
        self.max_bins = bins
        self.width = 0.0
        self.counts = np.zeros(0, np.int64)
        self.amax = 0.0
        self.n = 0

    def update(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, np.float32).ravel())  # a new array: scaled in place below
        if a.size == 0:
            return
        m = float(a.max())
        self.n += a.size
        self.amax = max(self.amax, m)
        if m == 0 and self.width == 0:
            self.counts = np.zeros(1, np.int64) if not self.counts.size else self.counts
            self.counts[0] += a.size
            return
        if self.width == 0:
            self.width = float(2.0 ** np.ceil(np.log2(m / self.max_bins)))
        # bins 0 … floor(amax / width): the histogram always ends at the bin holding amax
        need = int(m // self.width) + 1
        while need > self.max_bins:  # merge pairs until the range fits in BINS bins
            c = self.counts
            if c.size % 2:
                c = np.append(c, 0)
            self.counts = c.reshape(-1, 2).sum(1)
            self.width *= 2
            need = int(m // self.width) + 1
        if need > self.counts.size:
            self.counts = np.append(self.counts, np.zeros(need - self.counts.size, np.int64))
        # width is a power of two, so a * (1 / width) is exact and its floor never exceeds the
        # bin of amax: no clipping pass needed (this loop is the collector's hot spot)
        a *= np.float32(1.0 / self.width)
        idx = a.astype(np.int32)
        self.counts += np.bincount(idx, minlength=self.counts.size)

    def to_json(self) -> dict:
        return {"amax": self.amax, "width": self.width, "n": self.n, "counts": self.counts.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> AbsHistogram:
        h = cls()
        h.amax, h.width, h.n = float(d["amax"]), float(d["width"]), int(d["n"])
        h.counts = np.asarray(d["counts"], np.int64)
        return h


# ---- amax from statistics ---------------------------------------------------------------------
def amax_max(h: AbsHistogram) -> float:
    return float(h.amax)


def amax_percentile(h: AbsHistogram, percentile: float = DEFAULT_PERCENTILE) -> float:
    if h.width == 0 or h.counts.sum() == 0:
        return float(h.amax)
    cdf = np.cumsum(h.counts) / h.counts.sum()
    i = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(h.amax, (i + 1) * h.width))


def amax_entropy(h: AbsHistogram, levels: int = QUANT_LEVELS, start: int = ENTROPY_START) -> float:
    """TensorRT's KL-divergence threshold over the histogram (see module doc)."""
    bins = h.counts.astype(np.float64)
    n = bins.size
    if h.width == 0 or n <= start or bins.sum() == 0:
        return float(h.amax)
    best_i, best_kl = n, np.inf
    tail = np.concatenate([np.cumsum(bins[::-1])[::-1], [0.0]])  # tail[i] = sum(bins[i:])
    for i in range(start, n + 1):
        p = bins[:i].copy()
        p[-1] += tail[i]
        nz = bins[:i] != 0
        # split the i bins into `levels` chunks and spread each chunk's mass over its non-empty bins
        chunk = (np.arange(i) * levels) // i
        mass = np.bincount(chunk, weights=bins[:i], minlength=levels)
        count = np.bincount(chunk, weights=nz, minlength=levels)
        q = np.where(nz, mass[chunk] / np.maximum(count[chunk], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if qs == 0:
            continue
        p /= ps
        q /= qs
        m = p > 0
        with np.errstate(divide="ignore"):
            kl = float(np.sum(p[m] * np.log(p[m] / np.where(q[m] > 0, q[m], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(min(h.amax, best_i * h.width))


def compute_amax(h: AbsHistogram, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    if method == "max":
        return amax_max(h)
    if method == "percentile":
        return amax_percentile(h, percentile)
    if method == "entropy":
        return amax_entropy(h)
    raise UserError(f"unknown calibration method '{method}': use one of {', '.join(METHODS)}")


# ---- collection -------------------------------------------------------------------------------
def collect(
    model,
    tensors: list[str],
    batches,
    total: int | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, AbsHistogram]:
    """Run `model` (ModelProto, fp32, runnable by ORT) over `batches` of images, histogramming the
    named tensors. Only one batch of activations is alive at a time."""
    from tqdm import tqdm

    sess = ort_session(model, extra_outputs=tensors, threads=threads)
    in_name = sess.get_inputs()[0].name
    hists = {t: AbsHistogram() for t in tensors}
    bar = tqdm(total=total, unit="img", desc="calibrate", disable=not progress, leave=False)
    for x in batches:
        outs = sess.run(tensors, {in_name: x})
        for t, v in zip(tensors, outs):
            hists[t].update(v)
        del outs
        bar.update(len(x))
    bar.close()
    return hists


def cache_key(model_hash: str, data_hash: str, preprocess: dict) -> str:
    """What the statistics depend on. The tensors are not part of it: a cache holding more
    tensors than asked serves any subset (FP8 also histograms the attention MatMuls' inputs,
    INT8 only the linear layers'), so the two formats share one pass over the images."""
    blob = json.dumps(
        {
            "model": model_hash,
            "data": data_hash,
            "preprocess": preprocess,
            "bins": BINS,
            "version": COLLECTOR_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def load_cache(path: Path, key: str) -> dict[str, AbsHistogram] | None:
    """Every histogram cached under `key` (None: no such cache)."""
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        log.warning("calibrate: ignoring unreadable cache %s", path)
        return None
    if d.get("key") != key:
        return None
    return {t: AbsHistogram.from_json(v) for t, v in d["tensors"].items()}


def save_cache(path: Path, key: str, hists: dict[str, AbsHistogram], meta: dict) -> None:
    write_json_atomic(
        path, {"key": key, **meta, "tensors": {t: h.to_json() for t, h in hists.items()}}
    )


def calibrate(
    model,
    model_path: Path,
    tensors: list[str],
    samples,
    size: int,
    *,
    cache: Path | None,
    data_hash: str,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[dict[str, AbsHistogram], dict]:
    """Statistics for `tensors` over `samples`, from `cache` when its key matches."""
    pre = {"size": size, "crop_pct": 1.0}
    key = cache_key(onnx_hash(model_path), data_hash, pre)
    cached = (load_cache(cache, key) if cache is not None else None) or {}
    if set(tensors) <= set(cached):
        log.info("calibrate: statistics from %s (same model and images)", cache)
        return {t: cached[t] for t in tensors}, {"cache": "hit", "key": key}
    stream = iter_batches(samples, size=size, batch_size=batch_size)
    t0 = time.perf_counter()
    hists = collect(
        model, tensors, (b.images for b in stream), total=len(samples), progress=progress
    )
    seconds = time.perf_counter() - t0
    n = stream.images_yielded
    if n == 0:
        raise UserError(
            f"calibration read no image: every file was unreadable ({len(stream.skipped)} skipped)"
        )
    meta = {
        "images": n,
        "skipped": [str(p) for p, _ in stream.skipped],
        "seconds": round(seconds, 2),
        "images_per_s": round(n / max(seconds, 1e-9), 2),
    }
    if cache is not None:  # keep what the other format cached for the same model and images
        save_cache(cache, key, {**cached, **hists}, meta)
    return hists, {"cache": "miss", "key": key, **meta}
