"""Precision stage, FP16 half: `model.onnx`/`model.fused.onnx` → strongly typed `model.fp16.onnx`.

Why our own converter rather than onnxconverter-common's `convert_float_to_float16`:
- Strong typing (TensorRT 11, `STRONGLY_TYPED` on 10.x) runs every op in its inputs' dtype, so the
  graph must say exactly where fp32 is computed. We decide per *node* (fp16 or fp32) and insert an
  explicit Cast wherever a tensor meets a node of the other dtype; nothing is left to the builder.
- LayerNorm must be computed in fp32 (the precision policy, docs/precision.md).
  onnxconverter-common's block list does the
  same in spirit, but it also clamps initializers into fp16 range silently (1e-7…1e4) instead of
  keeping them fp32, which would flush folded LayerScale weights (γ = 1e-5…1e-6) — the very thing
  the policy tells us to keep. We keep those initializers fp32, run their node in fp32, and say so in the
  manifest.
- It leaves constants inside local-function bodies fp32 (ORT then refuses the model),
  and it has no notion of our plugin nodes (they must see fp16 I/O). We never touch function
  bodies; plugin nodes are plain nodes computed in fp16.
- The same typing core is reused by the INT8 stage (`pipeline/stages/quantize.py`), which needs
  to insert Q/DQ *in the dtype of the node they feed*; an external converter run first would make
  that a second, fragile pass.

Per-node rule: a node computes in fp32 when its op is in `FP32_OPS` (LayerNormalization) or when
one of its float initializers is unsafe in fp16 (overflow, or relative L2 rounding error above
`REL_ERR_MAX`, which catches weights living in the subnormal range, e.g. with a folded LayerScale
γ); every other node that handles floats computes in fp16. Graph I/O stays fp32 unless
`fp16_io=True`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.artifacts import StageRecord, finish, onnx_hash, reuse, save_onnx
from pipeline.errors import UserError
from pipeline.onnx_io import load_onnx

log = logging.getLogger(__name__)

F32, F16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16 (avoid importing onnx at module import)
FLOATS = {F32, F16}
FP16_MAX = 65504.0
REL_ERR_MAX = 1e-3  # fp16 rounding of normal values gives ≈ 3e-4 (rms relative)
FLUSH_FRACTION_MAX = 0.01  # more than 1 % of non-zero weights rounding to 0 → keep fp32
FP32_OPS = {"LayerNormalization"}
# Ops whose float outputs are not derived from float inputs (or which have none).
_NO_COMPUTE = {"Shape", "Size", "Constant", "ConstantOfShape"}
# Ops whose outputs are never float whatever their inputs (for the dtype fallback).
_NON_FLOAT_OUT = {
    "Shape",
    "Size",
    "ArgMax",
    "ArgMin",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "NonZero",
    "IsNaN",
    "IsInf",
    "QuantizeLinear",
    "Cast",
    "CastLike",
    "TopK",
}
# The fuse stage marks folded nodes and initializers with doc_string "cait.folded_gamma …"
# (pipeline/passes/fold_layerscale.py); the other spellings keep older or hand-made graphs honest.
LAYERSCALE_MARKERS = ("cait.folded_gamma", "folded_gamma", "layerscale", "layer_scale")
STRICT_FLUSH_FRACTION_MAX = 0.001  # marked (γ-folded) weights: 0.1 % flushed is already too many


def _np_dtype(t: int):
    return {F32: np.float32, F16: np.float16}[t]


def is_layerscale_folded(node, initializers=()) -> bool:
    """Honour the fuse stage's marker on nodes whose weights carry a folded LayerScale γ.

    The marker may sit in the node's doc_string or as a metadata key/value; we accept any of
    `LAYERSCALE_MARKERS` so a wording change in the fuse pass cannot silently drop the check.
    """
    texts = [node.doc_string.lower()] + [i.doc_string.lower() for i in initializers]
    texts += [f"{p.key}={p.value}".lower() for p in getattr(node, "metadata_props", [])]
    return any(m in t for t in texts for m in LAYERSCALE_MARKERS)


def fp16_safety(w: np.ndarray, strict: bool = False) -> str | None:
    """None when `w` survives fp16 storage; otherwise why it must stay fp32.

    `strict` (weights carrying a folded LayerScale γ) tolerates 10× fewer flushed values. We do
    not keep a weight fp32 merely because *some* entry is subnormal: ~0.2 % of any trained
    N(0, 0.02) matrix is, so that rule would pin every projection to fp32.
    """
    w = np.asarray(w, np.float32)
    if w.size == 0:
        return None
    a = np.abs(w)
    if not np.all(np.isfinite(a)):
        return None  # inf/nan stay what they are in fp16 too
    if a.max() > FP16_MAX:
        return f"overflow: max |w| {a.max():.3g} > {FP16_MAX:g}"
    h = w.astype(np.float16).astype(np.float32)
    nz = a > 0
    if nz.any():
        flushed = float(np.mean(h[nz] == 0))
        if flushed > (STRICT_FLUSH_FRACTION_MAX if strict else FLUSH_FRACTION_MAX):
            return f"underflow: {flushed:.1%} of non-zero values flush to 0 in fp16"
        norm = float(np.linalg.norm(w))
        rel = float(np.linalg.norm(h - w)) / norm if norm > 0 else 0.0
        if rel > REL_ERR_MAX:
            return (
                f"precision: relative error {rel:.2e} in fp16 (max |w| {a.max():.2e}, "
                "values in fp16's subnormal range)"
            )
    return None


@dataclass
class Typed:
    """The result of the typing pass: what was kept fp32 and why, and counts for the manifest."""

    kept_fp32: list[dict] = field(default_factory=list)
    fp32_nodes: dict[str, str] = field(default_factory=dict)  # node name → reason
    casts: int = 0
    node_dtypes: Counter = field(default_factory=Counter)


class Converter:
    """Strongly typed fp16 rewrite of an ONNX ModelProto (in place).

    `pre_hook(node, dtype, inputs, new_nodes) -> inputs` lets the INT8 stage rewrite a node's
    float inputs (insert Q/DQ) once they are in the node's dtype: it may append nodes to
    `new_nodes` (they run before `node`) and returns the node's new input names.
    """

    def __init__(self, model, *, fp16_io: bool = False, pre_hook=None, low: int = F16):
        import onnx

        self.onnx = onnx
        self.model = model
        self.g = model.graph
        self.fp16_io = fp16_io
        self.pre_hook = pre_hook
        self.low = low  # F32: no fp16 at all (the INT8 stage's `rest="fp32"` variant)
        self.info = Typed()
        self._uid = 0

    # ---- helpers ---------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        self._uid += 1
        return f"{base}__p{self._uid}"

    def _types(self) -> dict[str, int]:
        """Element type of every tensor, from the graph and ONNX shape inference."""
        onnx = self.onnx
        inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=False)
        types = {}
        for vi in (
            list(inferred.graph.value_info)
            + list(inferred.graph.input)
            + list(inferred.graph.output)
        ):
            if vi.type.tensor_type.elem_type:
                types[vi.name] = vi.type.tensor_type.elem_type
        for init in self.g.initializer:
            types[init.name] = init.data_type
        # Plugin nodes have no schema (their outputs have input 0's dtype, by contract), and ONNX
        # shape inference stops behind them; propagate in node order: an untyped output of a
        # float-computing op has the dtype of its first float input.
        for node in self.g.node:
            src = next((types[i] for i in node.input if types.get(i) in FLOATS), None)
            for o in node.output:
                if o and o not in types and src is not None and node.op_type not in _NON_FLOAT_OUT:
                    types[o] = src
        return types

    # ---- the pass --------------------------------------------------------------------------
    def run(self) -> Typed:
        """1. decide every node's compute dtype; 2. rewrite inputs (Casts, typed initializer
        copies, the pre-hook) in topological order; 3. graph outputs in the I/O dtype."""
        _constants_to_initializers(self.model)
        self.types = self._types()
        self.inits = {i.name: i for i in self.g.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self._safety: dict[str, str | None] = {}
        decisions = [self._decide(node) for node in self.g.node]
        self.cur: dict[str, int] = {}  # tensor → dtype after the rewrite
        self._casts: dict[tuple[str, int], str] = {}
        self._copies: dict[tuple[str, int], str] = {}
        self.new_nodes: list = []
        for vi in self.g.input:
            if vi.type.tensor_type.elem_type in FLOATS and self.fp16_io:
                vi.type.tensor_type.elem_type = F16
            self.cur[vi.name] = vi.type.tensor_type.elem_type
        for node, dtype in zip(list(self.g.node), decisions):
            self._rewrite(node, dtype)
        self._retype_outputs()
        del self.g.node[:]
        self.g.node.extend(self.new_nodes)
        # unused originals (fully replaced by their fp16 copies or by Q/DQ) go
        used = {i for n in self.g.node for i in n.input} | {o.name for o in self.g.output}
        keep = [i for i in self.g.initializer if i.name in used]
        del self.g.initializer[:]
        self.g.initializer.extend(keep)
        del self.g.value_info[:]  # stale dtypes; shape inference re-derives what it can
        return self.info

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            from onnx import numpy_helper

            self._arrays[name] = numpy_helper.to_array(self.inits[name])
        return self._arrays[name]

    def _decide(self, node) -> int | None:
        """The node's compute dtype (None: it computes no float), recording why fp32 if so."""
        float_in = [i for i in node.input if i and self.types.get(i) in FLOATS]
        float_out = [o for o in node.output if o and self.types.get(o) in FLOATS]
        if node.op_type in _NO_COMPUTE or not (float_in or float_out):
            return None
        if self.low == F32:
            return F32
        if node.op_type in FP32_OPS:
            reason = f"{node.op_type} computed in fp32 (precision policy)"
        else:
            reason = self._unsafe_initializer(node, float_in)
        if reason:
            self.info.fp32_nodes[node.name] = reason
        return F32 if reason else self.low

    def _unsafe_initializer(self, node, float_in) -> str | None:
        """Why one of the node's float initializers must stay fp32 (recorded), else None."""
        marked = is_layerscale_folded(node, [self.inits[i] for i in float_in if i in self.inits])
        reason = None
        for i in (i for i in float_in if i in self.inits):
            if i not in self._safety:
                self._safety[i] = fp16_safety(self._array(i), strict=marked)
            if self._safety[i]:
                why = ("folded LayerScale γ — " if marked else "") + self._safety[i]
                self.info.kept_fp32.append(
                    {"initializer": i, "node": node.name, "op": node.op_type, "reason": why}
                )
                reason = f"initializer {i} kept fp32 ({why})"
        return reason

    def _as_dtype(self, name: str, dtype: int) -> str:
        """`name` in `dtype`: a typed copy of an initializer, or a Cast (each made once)."""
        suffix = "fp16" if dtype == F16 else "fp32"
        if name in self.inits:
            if (name, dtype) not in self._copies:
                new = name
                if self.inits[name].data_type != dtype:
                    from onnx import numpy_helper

                    new = self.unique(f"{name}_{suffix}")
                    t = numpy_helper.from_array(self._array(name).astype(_np_dtype(dtype)), new)
                    self.g.initializer.append(t)
                    self.inits[new] = t
                self._copies[(name, dtype)] = new
            return self._copies[(name, dtype)]
        have = self.cur.get(name, self.types.get(name))
        if have == dtype or have not in FLOATS:
            return name
        if (name, dtype) not in self._casts:
            out = self.unique(f"{name}_{suffix}")
            self.new_nodes.append(
                self.onnx.helper.make_node(
                    "Cast", [name], [out], to=dtype, name=self.unique("cast")
                )
            )
            self._casts[(name, dtype)] = out
            self.info.casts += 1
        return self._casts[(name, dtype)]

    def _rewrite(self, node, dtype: int | None) -> None:
        """Give `node` its float inputs in `dtype` (then the pre-hook's say) and type its outputs."""
        if dtype is None:
            for o in node.output:
                self.cur[o] = self.types.get(o, 0)
            self.new_nodes.append(node)
            return
        self.info.node_dtypes["fp16" if dtype == F16 else "fp32"] += 1
        if node.op_type == "Cast":
            # Cast's input keeps its dtype; a Cast *to* float now casts to the node's dtype.
            to = next(a for a in node.attribute if a.name == "to")
            if to.i in FLOATS:
                to.i = dtype
            self.cur[node.output[0]] = to.i
            self.new_nodes.append(node)
            return
        ins = [
            self._as_dtype(i, dtype) if i and self.types.get(i) in FLOATS else i for i in node.input
        ]
        if self.pre_hook is not None:
            ins = self.pre_hook(node, dtype, ins, self.new_nodes)
        node.input[:] = ins
        for o in (o for o in node.output if o):
            self.cur[o] = dtype if self.types.get(o) in FLOATS else self.types.get(o, 0)
        self.new_nodes.append(node)

    def _retype_outputs(self) -> None:
        """Graph outputs in the requested I/O dtype: the producer writes an inner tensor and a
        Cast writes the public name."""
        want = F16 if self.fp16_io else F32
        for vo in self.g.output:
            t = self.cur.get(vo.name)
            if t in FLOATS and t != want:
                inner = self.unique(vo.name)
                for n in self.new_nodes:
                    n.output[:] = [inner if o == vo.name else o for o in n.output]
                    n.input[:] = [inner if i == vo.name else i for i in n.input]
                self.new_nodes.append(
                    self.onnx.helper.make_node(
                        "Cast", [inner], [vo.name], to=want, name=self.unique("cast_out")
                    )
                )
                self.info.casts += 1
            if t in FLOATS:
                vo.type.tensor_type.elem_type = want


def prepare(model) -> None:
    """Make node names unique and bypass Identity nodes (paddle2onnx emits hundreds, 361 in xxs_24,
    and they hide which initializer feeds a MatMul). Identity feeding a graph output is kept."""
    g = model.graph
    outputs = {o.name for o in g.output}
    alias = {}
    keep = []
    for node in g.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
            continue
        keep.append(node)
    seen = set()
    for k, node in enumerate(keep):
        node.input[:] = [alias.get(i, i) for i in node.input]
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{k}"
        seen.add(node.name)
    del g.node[:]
    g.node.extend(keep)
    _constants_to_initializers(model)


def _constants_to_initializers(model) -> None:
    """Float `Constant` nodes (paddle2onnx emits every weight as one) become initializers, so one
    code path types and quantizes every weight."""
    import onnx

    g = model.graph
    keep = []
    for node in g.node:
        if (
            node.op_type == "Constant"
            and len(node.attribute) == 1
            and node.attribute[0].name == "value"
            and node.attribute[0].t.data_type in FLOATS
        ):
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)


def convert_fp16(model, *, fp16_io: bool = False, pre_hook=None, low: int = F16) -> Typed:
    """Rewrite `model` (an onnx ModelProto) in place; return what was kept fp32 and why."""
    prepare(model)
    if model.functions:
        log.info(
            "fp16: model carries %d local functions; their bodies are left as they are "
            "(they must be dtype-generic)",
            len(model.functions),
        )
    return Converter(model, fp16_io=fp16_io, pre_hook=pre_hook, low=low).run()


def to_fp16(
    src: str | Path, dst: str | Path, *, fp16_io: bool = False, force: bool = False
) -> StageRecord:
    """Stage: fp32 ONNX (`model.onnx` or `model.fused.onnx`) → strongly typed fp16 ONNX.

    Returns (and records in dst's manifest under `fp16`) the settings, hashes, counts and the list
    of initializers kept fp32 with their reason. Not re-run when src and settings are unchanged.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise UserError(f"{src} does not exist: run export (and fuse) first")
    inputs = {src.name: onnx_hash(src)}
    settings = {
        "fp16_io": fp16_io,
        "fp32_ops": sorted(FP32_OPS),
        "rel_err_max": REL_ERR_MAX,
        "flush_fraction_max": FLUSH_FRACTION_MAX,
        "strict_flush_fraction_max": STRICT_FLUSH_FRACTION_MAX,
    }
    fresh = reuse(dst.parent, "fp16", inputs, settings, {dst.name: dst}, force)
    if fresh:
        return fresh
    t0 = time.perf_counter()
    model = load_onnx(src)
    info = convert_fp16(model, fp16_io=fp16_io)
    save_onnx(model, dst)
    record = {
        "inputs": inputs,
        "settings": settings,
        "outputs": {dst.name: onnx_hash(dst)},
        "kept_fp32": info.kept_fp32,
        "fp32_nodes": info.fp32_nodes,
        "nodes": dict(info.node_dtypes),
        "casts": info.casts,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info(
        "fp16: %s — %d nodes fp16, %d fp32 (%d initializers kept fp32), %d casts, %.1f s",
        dst,
        info.node_dtypes["fp16"],
        info.node_dtypes["fp32"],
        len(info.kept_fp32),
        info.casts,
        record["seconds"],
    )
    return finish(dst.parent, "fp16", record, {dst.name: dst})
