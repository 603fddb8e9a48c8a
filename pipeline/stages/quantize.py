"""Precision stage, quantized half: fp32 ONNX → `model.int8.onnx` / `model.fp8.onnx`, explicit Q/DQ.

INT8 and FP8 (E4M3) are one code path; what differs is a row of `FORMATS` (element type, the
largest magnitude, the calibration methods, whether the attention's batched MatMuls get Q/DQ).

Rules (TensorRT's explicit quantization): symmetric, zero point 0; weights per output channel, activations per
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
activation MatMuls (q·kᵀ, p·v in the unfused graph) stay fp16 in INT8, like inside the attention
plugins.

FP8 (TensorRT ≥ 10.6 on compute capability ≥ 8.9; `pipeline/trt/versions.py`): the same linear
layers, with E4M3 weights per output channel and activations per tensor (scale = amax / 448,
amax from `max` or `percentile`: entropy is INT8's 128-level KL search). In the plugin-free
attention path the two batched MatMuls also get Q/DQ on both inputs, DQ feeding the MatMul
directly: that is the pattern TensorRT's FP8 attention fusion matches, `Q → DQ → BMM1 → (Mul/Div)
→ (Add) → Softmax → Q → DQ → BMM2` (NVIDIA Model-Optimizer `modelopt/onnx/quantization/
graph_utils.py: match_fp8_mha_pattern`; `modelopt/onnx/export/fp8_exporter.py` moves the K
Transpose and the scale Mul in front of the Q so that DQ feeds the MatMul, and quantizes a
Softmax output with the fixed scale 1/448, its range being [0, 1]). We do the same: a BMM input
produced by a Softmax gets amax 1 without calibration; every other BMM input (q, kᵀ, v, and the
talking-heads' mixed probabilities, which are not bounded by 1) is calibrated like a linear
layer's input. Plugin nodes stay floating point.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import (
    CALIB_CACHE,
    FP8,
    INT8,
    StageRecord,
    finish,
    onnx_hash,
    reuse,
    save_onnx,
)
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
QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear with fp16 scales (and FP8 types)
DEFAULT_PARITY_IMAGES = 256
SOFTMAX_AMAX = 1.0  # a Softmax output lies in [0, 1]: its FP8 scale is 1/448 (Model-Optimizer)


@dataclasses.dataclass(frozen=True)
class QuantFormat:
    """What one quantized precision is: the rest of this module is shared."""

    name: str  # manifest key and precision name
    artifact: str  # file name in the artifact folder
    elem_type: int  # ONNX element type of quantized tensors and zero points
    qmax: float  # scale = amax / qmax
    methods: tuple[str, ...]  # calibration methods that mean something for this type
    default_method: str
    attention_bmm: bool  # Q/DQ on the attention's activation × activation MatMuls too
    # E4M3 is floating point: a scale below what its dtype holds can be raised to that dtype's
    # smallest normal (fp16: 6.1e-5), which only moves the values down E4M3's exponent range
    # (normal down to 2^-6·scale, subnormal to 2^-9·scale). INT8 would lose their resolution.
    floor_scales: bool = False

    def scale_floor(self, dtype) -> float:
        return float(np.finfo(dtype).tiny) if self.floor_scales else 0.0

    def scales(self, amax, dtype) -> np.ndarray:
        """amax / qmax, raised to `scale_floor` where the format allows (0 stays 0)."""
        s = np.asarray(amax) / self.qmax  # float32 weights stay float32, as INT8 always did
        return np.where(s > 0, np.maximum(s, self.scale_floor(dtype)), s).astype(np.float32)

    def encode(self, x: np.ndarray) -> bytes:
        """x (already divided by its scale) as the raw bytes of `elem_type`."""
        x = np.clip(np.asarray(x, np.float32), -self.qmax, self.qmax)
        if self.elem_type == _INT8:
            return np.rint(x).astype(np.int8).tobytes()
        import ml_dtypes  # onnx 1.17 converts float8 one Python scalar at a time

        return x.astype(ml_dtypes.float8_e4m3fn).tobytes()


_INT8, _FP8E4M3FN = 3, 17  # onnx.TensorProto.INT8 / FLOAT8E4M3FN
FORMATS = {
    "int8": QuantFormat("int8", INT8, _INT8, 127.0, cal.METHODS, "entropy", False),
    "fp8": QuantFormat("fp8", FP8, _FP8E4M3FN, 448.0, ("max", "percentile"), "max", True, True),
}


def quant_format(precision: str) -> QuantFormat:
    if precision not in FORMATS:
        raise UserError(f"unknown quantized precision {precision!r}: use {', '.join(FORMATS)}")
    return FORMATS[precision]


def parity_count(available: int, parity_images: int = DEFAULT_PARITY_IMAGES) -> int:
    """How many images the parity set takes from a folder of `available` images.

    At most half, so that a small folder still leaves calibration images; the parity ladder uses
    the same rule (and seed), which is what keeps the two sets disjoint.
    """
    return max(0, min(parity_images, available // 2))


def quantizable(model, attention_bmm: bool = False) -> dict[str, dict]:
    """Nodes that get Q/DQ: name → {acts: {input slot: tensor}, weight: initializer or None,
    axis: channel axis}. `attention_bmm` adds the MatMuls of two activations (FP8)."""
    inits = {i.name: i for i in model.graph.initializer}
    dynamic = _dynamic_tensors(model) if attention_bmm else set()
    found = {}
    for node in model.graph.node:
        if (
            attention_bmm
            and node.op_type == "MatMul"
            and node.input[0] in dynamic
            and node.input[1] in dynamic
        ):
            found[node.name] = {"acts": {0: node.input[0], 1: node.input[1]}, "weight": None}
            continue
        if len(node.input) < 2 or node.input[1] not in inits or node.input[0] in inits:
            continue
        w = inits[node.input[1]]
        if w.data_type != F32:
            continue
        shape = list(w.dims)
        axis = None
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis = 0 if trans_b else 1
        elif node.op_type == "MatMul" and len(shape) == 2 and min(shape) >= MIN_GEMM_DIM:
            axis = 1
        if axis is not None:
            found[node.name] = {"acts": {0: node.input[0]}, "weight": w.name, "axis": axis}
    return found


def _dynamic_tensors(model) -> set[str]:
    """Tensors computed from the graph input (not from initializers and constants alone)."""
    inits = {i.name for i in model.graph.initializer}
    dynamic = {i.name for i in model.graph.input if i.name not in inits}
    for node in model.graph.node:
        if any(i in dynamic for i in node.input):
            dynamic.update(o for o in node.output if o)
    return dynamic


def softmax_fed(model, targets: dict[str, dict]) -> set[str]:
    """Activation tensors of `targets` produced by a Softmax (fixed amax, not calibrated)."""
    softmax = {o for n in model.graph.node if n.op_type == "Softmax" for o in n.output}
    return {a for t in targets.values() for a in t["acts"].values() if a in softmax}


def weight_scale(w: np.ndarray, axis: int, qmax: float = 127.0) -> np.ndarray:
    """Symmetric per-channel scale along `axis`: |w|max / qmax (0 for an all-zero channel)."""
    red = tuple(i for i in range(w.ndim) if i != axis)
    return np.abs(w).max(axis=red) / qmax


def quantize_weight(
    w: np.ndarray, axis: int, scale_dtype=np.float32, fmt: QuantFormat | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization: (values / scale, clipped, in float32 — `fmt.encode`
    stores them —, scale per channel along `axis`, in `scale_dtype`). INT8 by default.

    The scale is rounded to `scale_dtype` *before* quantizing, so the DQ node reproduces exactly
    the values we chose (an fp16 scale in the fp16 subnormal range is then merely a slightly
    different scale, not an error).
    """
    fmt = fmt or FORMATS["int8"]
    s = fmt.scales(weight_scale(w, axis, 1.0), scale_dtype)
    scale = np.where(s > 0, s, 1.0).astype(scale_dtype)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(w / scale.astype(np.float32).reshape(shape), -fmt.qmax, fmt.qmax)
    if fmt.elem_type == _INT8:
        q = np.rint(q).astype(np.int8)
    return q, scale


def scale_ok(scale: np.ndarray, dtype) -> bool:
    """A scale is usable in `dtype` when rounding it there moves it by less than 1 %."""
    s = np.asarray(scale, np.float64)
    r = s.astype(dtype).astype(np.float64)
    return bool(np.all(np.isfinite(r)) and np.all(np.abs(r - s) <= 0.01 * s))


class _QDQ:
    """The pre-hook that the typing pass calls for every node once its inputs have its dtype."""

    def __init__(self, model, targets: dict[str, dict], act_amax: dict[str, float], fmt):
        from onnx import numpy_helper as nh

        self.g = model.graph
        self.targets = targets
        self.act_amax = act_amax
        self.fmt = fmt
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

    def _quantized(self, name: str, values: np.ndarray) -> str:
        """An initializer of the format's element type (raw bytes: onnx 1.17 has no fp8 numpy)."""
        from onnx import TensorProto

        t = TensorProto(name=name, data_type=self.fmt.elem_type, dims=list(np.shape(values)))
        t.raw_data = self.fmt.encode(values)
        self.g.initializer.append(t)
        return name

    def _activation(self, tensor: str, act: str, dtype: int, np_t, base: str, new_nodes) -> str:
        """One Q/DQ pair per (tensor, dtype), shared by every consumer (the q/k/v linears)."""
        from onnx import helper

        key = (tensor, dtype)
        if key not in self.shared:
            scale = self.fmt.scales(max(self.act_amax[act], 1e-12), np_t)
            s = self._init(f"{base}_act_scale", scale.astype(np_t))
            z = self._quantized(f"{base}_act_zp", np.zeros((), np.float32))
            qn, dq = f"{base}_act_q", f"{base}_act_dq"
            new_nodes.append(
                helper.make_node(
                    "QuantizeLinear", [tensor, s, z], [qn], name=f"{base}_QuantizeLinear_act"
                )
            )
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear", [qn, s, z], [dq], name=f"{base}_DequantizeLinear_act"
                )
            )
            self.shared[key] = dq
        return self.shared[key]

    def _weight(self, t: dict, np_t, base: str, new_nodes) -> str:
        from onnx import helper

        q, w_scale = quantize_weight(self.inits[t["weight"]], t["axis"], np_t, self.fmt)
        wq = self._quantized(f"{t['weight']}_{self.fmt.name}", q)
        ws = self._init(f"{t['weight']}_scale", w_scale.astype(np_t))
        wz = self._quantized(f"{t['weight']}_zp", np.zeros(w_scale.shape, np.float32))
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
        return wd

    def _why_not(self, t: dict, np_t) -> str | None:
        """Why a node stays unquantized: a scale its dtype cannot hold (else None)."""
        scales = [self.fmt.scales(max(self.act_amax[a], 1e-12), np_t) for a in t["acts"].values()]
        if t["weight"] is not None:
            w_scale = self.fmt.scales(weight_scale(self.inits[t["weight"]], t["axis"], 1.0), np_t)
            scales.append(w_scale[w_scale > 0])
        if all(scale_ok(s, np_t) for s in scales):
            return None
        return (
            f"scale not representable in {np.dtype(np_t).name} (smallest "
            f"{min(float(np.min(s)) for s in scales if np.size(s)):.2e}): left unquantized"
        )

    def __call__(self, node, dtype, ins, new_nodes):
        t = self.targets.get(node.name)
        if t is None:
            return ins
        np_t = np.float16 if dtype == F16 else np.float32
        why = self._why_not(t, np_t)
        if why:
            self.skipped[node.name] = why
            return ins
        base = node.name or t["weight"]
        out = list(ins)
        for slot, act in t["acts"].items():
            name = base if len(t["acts"]) == 1 else f"{base}_in{slot}"
            out[slot] = self._activation(ins[slot], act, dtype, np_t, name, new_nodes)
        if t["weight"] is not None:
            out[1] = self._weight(t, np_t, base, new_nodes)
        self.done.append(node.name)
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
    method: str | None = None,
    seed: int = 0,
    percentile: float = cal.DEFAULT_PERCENTILE,
    parity_images: int = DEFAULT_PARITY_IMAGES,
    rest: str = "fp16",
    fp16_io: bool = False,
    probe: int = 4,
    precision: str = "int8",
):
    """Validate the quantization settings and the calibration folder; return (dataset,
    calibration samples). Cheap (lists the folder, decodes `probe` images), so `build` calls it
    before its first stage: a missing, empty or unreadable folder fails in a second, not after
    export. `method` None: the format's default (int8 entropy, fp8 max)."""
    fmt = quant_format(precision)
    method = method or fmt.default_method
    if method not in fmt.methods:
        why = " (entropy is INT8's 128-level KL search)" if method == "entropy" else ""
        raise UserError(
            f"--calib-method {method} does not apply to {fmt.name}{why}: use one of "
            f"{', '.join(fmt.methods)}"
        )
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


def to_int8(src: str | Path, dst: str | Path, **kw) -> StageRecord:
    """Stage: fp32 ONNX → explicit-Q/DQ INT8 ONNX (manifest key `int8`); see `quantize`."""
    return quantize(src, dst, precision="int8", **kw)


def to_fp8(src: str | Path, dst: str | Path, **kw) -> StageRecord:
    """Stage: fp32 ONNX → explicit-Q/DQ FP8 E4M3 ONNX (manifest key `fp8`); see `quantize`."""
    return quantize(src, dst, precision="fp8", **kw)


def quantize(
    src: str | Path,
    dst: str | Path,
    *,
    precision: str = "int8",
    calib_data: str | Path,
    images: int = 512,
    method: str | None = None,
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
    """Stage: fp32 ONNX → explicit-Q/DQ `precision` ONNX (rest fp16), calibrated on `calib_data`.

    Calibration images are the class-balanced `images`-sample of `calib_data` disjoint from the
    `parity_images` that the parity ladder draws with the same seed (the same split for INT8
    and FP8). `rest="fp32"` keeps every non-quantized op fp32 (ONNX Runtime CPU deployment: ORT
    fuses fp32 Q/DQ into integer kernels, but has few fp16 CPU kernels); TensorRT wants the
    default fp16. Statistics are cached in `cache` (default: dst's folder / calib.json), shared
    by both formats. Returns the manifest record (key: the precision).
    """
    fmt = quant_format(precision)
    method = method or fmt.default_method
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
        precision=precision,
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
    if fmt.attention_bmm:
        settings["attention_bmm"] = True
    fresh = reuse(dst.parent, fmt.name, inputs, settings, {dst.name: dst}, force)
    if fresh:
        return fresh

    model = load_onnx(src)
    prepare(model)
    size = image_input(model).size
    targets = quantizable(model, attention_bmm=fmt.attention_bmm)
    fixed = {a: SOFTMAX_AMAX for a in softmax_fed(model, targets)}
    acts = sorted({a for t in targets.values() for a in t["acts"].values()} - set(fixed))
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
    amax = {a: cal.compute_amax(hists[a], method, percentile) for a in acts} | fixed
    amax_seconds = time.perf_counter() - t1

    hook = _QDQ(model, targets, amax, fmt)
    info = convert_fp16(model, fp16_io=fp16_io, pre_hook=hook, low=F16 if rest == "fp16" else F32)
    _bump_opset(model, QDQ_OPSET)
    save_onnx(model, dst)
    ratio = [amax[a] / hists[a].amax for a in acts if hists[a].amax > 0]
    bmm = [n for n in hook.done if targets[n]["weight"] is None]
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
            "fixed_amax": sorted(fixed),
            "amax_seconds": round(amax_seconds, 2),
            "amax_over_max_median": float(np.median(ratio)) if ratio else None,
        },
        "quantized_nodes": len(hook.done),
        "attention_bmm_nodes": len(bmm),
        "not_quantized": hook.skipped,
        "kept_fp32": info.kept_fp32,
        "nodes": dict(info.node_dtypes),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info(
        "%s: %s — %d nodes with Q/DQ (%d attention MatMuls; %s calibration over %d images, "
        "cache %s), %.1f s",
        fmt.name,
        dst,
        len(hook.done),
        len(bmm),
        method,
        len(calib),
        calib_meta["cache"],
        record["seconds"],
    )
    return finish(dst.parent, fmt.name, record, {dst.name: dst})
