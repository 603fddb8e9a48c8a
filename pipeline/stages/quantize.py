"""Precision stage, INT8 half: fp32 ONNX → `model.int8.onnx`, explicit Q/DQ as TensorRT wants.

Rules (TensorRT's explicit quantization): symmetric int8, zero point 0; weights per output channel, activations per
tensor; Q/DQ only on the inputs of Conv, Gemm and weight MatMuls; LayerNorm, Softmax and the
plugin nodes stay floating point; everything else fp16 (the strongly typed FP16 rewrite of
`precision.py`, which also keeps LayerNorm and unsafe initializers fp32).

Why not `onnxruntime.quantization.quantize_static` (measured on xxs_24): it quantizes every op type unless
restricted, its "Entropy" with default bins equals MinMax, real entropy needs minutes and GBs per
handful of images, it produces fp32 Q/DQ around an fp32 graph (we want fp16 everywhere else,
with Q/DQ in the dtype of the node they feed, which needs opset 19's fp16 scales), and it cannot
run a graph with plugin nodes without function bodies anyway. ModelOpt would do it right but
needs a GPU once plugin ops are present. So: our collector (`calibrate.py`) + Q/DQ insertion here.

Which MatMuls: those whose second input is a 2-D weight with both dimensions ≥ `MIN_GEMM_DIM`.
That excludes the talking-heads H×H head mixing (K = N = H = 4…16: no int8 speedup, and it sits on
the precision-critical score path) and tiny classifier heads (digits: 10 classes). Activation ×
activation MatMuls (q·kᵀ, p·v in the unfused graph) stay fp16, like inside the attention plugins.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import CALIB_CACHE, StageRecord, finish, onnx_hash, reuse, save_onnx
from pipeline.contract.reference import runnable
from pipeline.data import (
    CorruptImageError,
    ImageFolderDataset,
    load_image,
    manifest_hash,
    split_calib_parity,
)
from pipeline.errors import UserError
from pipeline.onnx_io import image_input, load_onnx
from pipeline.stages import calibrate as cal
from pipeline.stages.precision import F16, F32, convert_fp16, prepare

log = logging.getLogger(__name__)

MIN_GEMM_DIM = 32
QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear with fp16 scales
DEFAULT_PARITY_IMAGES = 256


def parity_count(available: int, parity_images: int = DEFAULT_PARITY_IMAGES) -> int:
    """How many images the parity set takes from a folder of `available` images.

    At most half, so that a small folder still leaves calibration images; the parity ladder uses
    the same rule (and seed), which is what keeps the two sets disjoint.
    """
    return max(0, min(parity_images, available // 2))


def quantizable(model) -> dict[str, dict]:
    """Nodes that get Q/DQ: name → {act: input tensor, weight: initializer, axis: channel axis}."""
    inits = {i.name: i for i in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in inits or node.input[0] in inits:
            continue
        w = inits[node.input[1]]
        if w.data_type != F32:
            continue
        shape = list(w.dims)
        if node.op_type == "Conv":
            found[node.name] = {"act": node.input[0], "weight": w.name, "axis": 0}
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            found[node.name] = {"act": node.input[0], "weight": w.name, "axis": 0 if trans_b else 1}
        elif node.op_type == "MatMul" and len(shape) == 2 and min(shape) >= MIN_GEMM_DIM:
            found[node.name] = {"act": node.input[0], "weight": w.name, "axis": 1}
    return found


def weight_scale(w: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel scale along `axis`: |w|max / 127 (0 for an all-zero channel)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    return np.abs(w).max(axis=red) / 127.0


def quantize_weight(
    w: np.ndarray, axis: int, scale_dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8: (q int8, scale per channel along `axis`, in `scale_dtype`).

    The scale is rounded to `scale_dtype` *before* quantizing, so the DQ node reproduces exactly
    the values we chose (an fp16 scale in the fp16 subnormal range is then merely a slightly
    different scale, not an error).
    """
    s = weight_scale(w, axis)
    scale = np.where(s > 0, s, 1.0).astype(scale_dtype)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.astype(np.float32).reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def scale_ok(scale: np.ndarray, dtype) -> bool:
    """A scale is usable in `dtype` when rounding it there moves it by less than 1 %."""
    s = np.asarray(scale, np.float64)
    r = s.astype(dtype).astype(np.float64)
    return bool(np.all(np.isfinite(r)) and np.all(np.abs(r - s) <= 0.01 * s))


class _QDQ:
    """The pre-hook that the typing pass calls for every node once its inputs have its dtype."""

    def __init__(self, model, targets: dict[str, dict], act_amax: dict[str, float]):
        from onnx import numpy_helper as nh

        self.g = model.graph
        self.targets = targets
        self.act_amax = act_amax
        self.inits = {
            i.name: nh.to_array(i)
            for i in model.graph.initializer
            if i.name in {t["weight"] for t in targets.values()}
        }
        self.shared: dict[tuple[str, int], str] = {}
        self.done: list[str] = []
        self.skipped: dict[str, str] = {}

    def _init(self, name, array):
        from onnx import numpy_helper as nh

        self.g.initializer.append(nh.from_array(array, name))
        return name

    def __call__(self, node, dtype, ins, new_nodes):
        from onnx import helper

        t = self.targets.get(node.name)
        if t is None:
            return ins
        np_t = np.float16 if dtype == F16 else np.float32
        amax = self.act_amax[t["act"]]
        a_scale = np.array(max(amax, 1e-12) / 127.0, np.float32)
        w = self.inits[t["weight"]]
        w_scale32 = weight_scale(w, t["axis"])
        if not (scale_ok(a_scale, np_t) and scale_ok(w_scale32[w_scale32 > 0], np_t)):
            self.skipped[node.name] = (
                f"scale not representable in {np.dtype(np_t).name} "
                f"(activation {float(a_scale):.2e}, weight min "
                f"{w_scale32.min():.2e}): left unquantized"
            )
            return ins
        q, w_scale = quantize_weight(w, t["axis"], np_t)
        base = node.name or t["weight"]
        # activation: one Q/DQ pair per (tensor, dtype), shared by every consumer (q/k/v linears)
        key = (ins[0], dtype)
        if key not in self.shared:
            s = self._init(f"{base}_act_scale", a_scale.astype(np_t))
            z = self._init(f"{base}_act_zp", np.array(0, np.int8))
            qn, dq = f"{base}_act_q", f"{base}_act_dq"
            new_nodes.append(
                helper.make_node(
                    "QuantizeLinear", [ins[0], s, z], [qn], name=f"{base}_QuantizeLinear_act"
                )
            )
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear", [qn, s, z], [dq], name=f"{base}_DequantizeLinear_act"
                )
            )
            self.shared[key] = dq
        wq = self._init(f"{t['weight']}_int8", q)
        ws = self._init(f"{t['weight']}_scale", w_scale.astype(np_t))
        wz = self._init(f"{t['weight']}_zp", np.zeros(w_scale.shape, np.int8))
        wd = f"{t['weight']}_dq"
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [wq, ws, wz],
                [wd],
                axis=t["axis"],
                name=f"{base}_DequantizeLinear_weight",
            )
        )
        self.done.append(node.name)
        out = list(ins)
        out[0], out[1] = self.shared[key], wd
        return out


def _bump_opset(model, version: int) -> None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version < version:
            o.version = version
    model.ir_version = max(model.ir_version, 9)


def calibration_set(
    calib_data,
    *,
    labels=None,
    images: int = 512,
    method: str = "entropy",
    seed: int = 0,
    percentile: float = cal.DEFAULT_PERCENTILE,
    parity_images: int = DEFAULT_PARITY_IMAGES,
    rest: str = "fp16",
    fp16_io: bool = False,
    probe: int = 4,
):
    """Validate the INT8 settings and the calibration folder; return (dataset, calibration
    samples). Cheap (lists the folder, decodes `probe` images), so `build` calls it before its
    first stage: a missing, empty or unreadable folder fails in a second, not after export."""
    if method not in cal.METHODS:
        raise UserError(f"unknown --calib-method '{method}': use one of {', '.join(cal.METHODS)}")
    if images < 1:
        raise UserError(f"--calib-images must be >= 1, got {images}")
    if rest not in ("fp16", "fp32"):
        raise UserError(f"rest must be 'fp16' or 'fp32', got {rest!r}")
    if rest == "fp32" and fp16_io:
        raise UserError("fp16 I/O needs rest='fp16'")
    if not 0 < percentile <= 100:
        raise UserError(f"percentile must be in (0, 100], got {percentile}")
    ds = ImageFolderDataset.from_dir(calib_data, labels)
    split = split_calib_parity(ds.samples, images, parity_count(len(ds), parity_images), seed=seed)
    calib = split.calib
    if not calib:
        raise UserError(
            f"no calibration images left in {calib_data} after setting aside "
            f"{len(split.parity)} for parity; add images or lower --calib-images"
        )
    if len(calib) < images:
        log.warning("calibrate: only %d images available (asked %d)", len(calib), images)
    _probe_readable(calib[:probe], calib_data)
    return ds, calib


def _probe_readable(samples, folder) -> None:
    """UserError when none of `samples` decodes (a folder of broken or unreadable files)."""
    reasons = []
    for s in samples:
        try:
            load_image(s.path)
            return
        except CorruptImageError as e:
            reasons.append(f"{s.path.name}: {e.reason}")
    if reasons:
        raise UserError(
            f"cannot read the calibration images in {folder} ({'; '.join(reasons[:2])}"
            "); pass a folder of readable JPEG/PNG images"
        )


def to_int8(
    src: str | Path,
    dst: str | Path,
    *,
    calib_data: str | Path,
    images: int = 512,
    method: str = "entropy",
    seed: int = 0,
    cache: str | Path | None = None,
    labels: str | Path | None = None,
    percentile: float = cal.DEFAULT_PERCENTILE,
    parity_images: int = DEFAULT_PARITY_IMAGES,
    batch_size: int = 8,
    fp16_io: bool = False,
    rest: str = "fp16",
    progress: bool = True,
    force: bool = False,
) -> StageRecord:
    """Stage: fp32 ONNX → explicit-Q/DQ INT8 ONNX (rest fp16), calibrated on `calib_data`.

    Calibration images are the class-balanced `images`-sample of `calib_data` disjoint from the
    `parity_images` that the parity ladder draws with the same seed. `rest="fp32"` keeps every
    non-quantized op fp32 (ONNX Runtime CPU deployment: ORT fuses fp32 Q/DQ into integer
    kernels, but has few fp16 CPU kernels); TensorRT wants the default fp16. Statistics are
    cached in `cache` (default: dst's folder / calib.json). Returns the manifest record (`int8`).
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise UserError(f"{src} does not exist: run export (and fuse) first")
    ds, calib = calibration_set(
        calib_data,
        labels=labels,
        images=images,
        method=method,
        seed=seed,
        percentile=percentile,
        parity_images=parity_images,
        rest=rest,
        fp16_io=fp16_io,
    )
    cache = Path(cache) if cache is not None else dst.parent / CALIB_CACHE
    t0 = time.perf_counter()
    data_hash = manifest_hash(calib, ds.root)
    inputs = {src.name: onnx_hash(src), "calib_data": data_hash}
    settings = {
        "method": method,
        "images": images,
        "seed": seed,
        "percentile": percentile if method == "percentile" else None,
        "parity_images": parity_images,
        "fp16_io": fp16_io,
        "rest": rest,
        "min_gemm_dim": MIN_GEMM_DIM,
        "bins": cal.BINS,
    }
    fresh = reuse(dst.parent, "int8", inputs, settings, {dst.name: dst}, force)
    if fresh:
        return fresh

    model = load_onnx(src)
    prepare(model)
    size = image_input(model).size
    targets = quantizable(model)
    acts = sorted({t["act"] for t in targets.values()})
    hists, calib_meta = cal.calibrate(
        runnable(model),
        src,
        acts,
        calib,
        size,
        cache=cache,
        data_hash=data_hash,
        batch_size=batch_size,
        progress=progress,
    )
    t1 = time.perf_counter()
    amax = {a: cal.compute_amax(hists[a], method, percentile) for a in acts}
    amax_seconds = time.perf_counter() - t1

    hook = _QDQ(model, targets, amax)
    info = convert_fp16(model, fp16_io=fp16_io, pre_hook=hook, low=F16 if rest == "fp16" else F32)
    _bump_opset(model, QDQ_OPSET)
    save_onnx(model, dst)
    ratio = [amax[a] / hists[a].amax for a in acts if hists[a].amax > 0]
    record = {
        "inputs": inputs,
        "settings": settings,
        "outputs": {dst.name: onnx_hash(dst)},
        "calibration": {
            **calib_meta,
            "images_used": len(calib),
            "cache_file": str(cache),
            "data_root": str(Path(ds.root).resolve()),
            "tensors": len(acts),
            "amax_seconds": round(amax_seconds, 2),
            "amax_over_max_median": float(np.median(ratio)) if ratio else None,
        },
        "quantized_nodes": len(hook.done),
        "not_quantized": hook.skipped,
        "kept_fp32": info.kept_fp32,
        "nodes": dict(info.node_dtypes),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info(
        "int8: %s — %d nodes with Q/DQ (%s calibration over %d images, cache %s), %.1f s",
        dst,
        len(hook.done),
        method,
        len(calib),
        calib_meta["cache"],
        record["seconds"],
    )
    return finish(dst.parent, "int8", record, {dst.name: dst})
