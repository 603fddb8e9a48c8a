"""Static TensorRT compatibility check of an ONNX model, without TensorRT.

What is checked, per target ("10.3", "10.16", "11.x"; data and sources in `parser_ops.json`):
1. opset: the default-domain opset lies in the parser's range (10.3: 9–20, 10.16/11.x: 9–24).
2. operators: every default-domain op is marked supported in that release's onnx-tensorrt
   `docs/operators.md`; any other op must be one of our plugins (`pipeline.plugin_specs`).
3. plugin nodes: `plugin_version` and `plugin_namespace` present and equal to the creator's, every
   field the creator declares present (only declared fields reach the plugin: the parser drops
   the others silently), and
   pre/post weights of H·H and biases of H values.
4. local functions: none named like a plugin node. TensorRT 10.3 imports a local function's body
   instead of the plugin; ≥10.15 prefers the body unless plugin_namespace is set (onnx-tensorrt
   ModelImporter; TensorRT CHANGELOG 10.7 and 10.15).
5. tensor types: only the data types the release lists ("TensorRT supports the following ONNX data
   types" in docs/operators.md). DOUBLE is refused although the parser down-casts it: TensorRT has
   no fp64 type, and under strong typing a silent cast changes the declared precision. UINT8 only
   as a network input or output ("UINT8 is only supported as network input or output tensor
   types"). INT8/INT4/FP8/FP4 are "quantized types", usable only through Q/DQ: a warning when such
   a tensor feeds anything but DequantizeLinear.
6. the GPU: FP8 tensors need compute capability ≥ 8.9 (`versions.FP8_MIN_COMPUTE`). An error for
   a target that implies an older GPU ("10.3": JetPack 6, Orin 8.7) or a `compute` below it; a
   warning when the GPU is not known.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import onnx

from pipeline.contract import SPECS, limit_violation
from pipeline.errors import UserError
from pipeline.onnx_io import is_large
from pipeline.trt import versions

_DATA = Path(__file__).with_name("parser_ops.json")
_DEFAULT_DOMAINS = ("", "ai.onnx")
# Element types newer than the installed onnx package knows (onnx 1.18 added FLOAT4E2M1 = 23).
_NEWER_TYPES = {23: "FLOAT4E2M1"}


def type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return _NEWER_TYPES.get(elem, f"ONNX type {elem}")


@dataclasses.dataclass(frozen=True)
class Problem:
    code: str  # opset | unsupported-op | unknown-op | plugin-attr | plugin-version |
    #                    plugin-namespace | plugin-shape | function-shadows-plugin | dtype |
    #                    uint8-internal | quantized-use | fp8-gpu
    message: str
    node: str | None = None
    severity: str = "error"  # "error" fails the build; "warning" is printed

    def __str__(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        return f"{self.severity}: {self.code}{where}: {self.message}"


@functools.cache
def parser_table(trt: str) -> dict:
    target = versions.normalize_target(trt)
    return json.loads(_DATA.read_text())["targets"][target]


def check_onnx(
    path_or_model, trt: str = versions.DEFAULT_TARGET, compute: str | None = None
) -> list[Problem]:
    """All problems TensorRT `trt`'s ONNX parser would have with the model (empty list: fine).

    `path_or_model`: a path (loaded without external weights: only the graph is needed) or an
    `onnx.ModelProto`. `compute`: the target GPU's compute capability ("8.7"), when known.
    Raises UserError only for an unknown target or an unreadable file.
    """
    table = parser_table(trt)
    target = versions.normalize_target(trt)
    model = _load(path_or_model)
    plugins = SPECS
    problems: list[Problem] = []
    problems += _check_opset(model, table, target)
    problems += _check_ops(model, table, target, plugins)
    problems += _check_functions(model, plugins)
    problems += _check_types(model, table, target)
    problems += _check_gpu(model, target, compute)
    return problems


def uses_fp8(model) -> bool:
    """True when the model holds FP8 tensors (weights or zero points of its Q/DQ)."""
    fp8 = onnx.TensorProto.FLOAT8E4M3FN
    return any(i.data_type == fp8 for i in model.graph.initializer) or any(
        a.name == "to" and a.i == fp8
        for n in model.graph.node
        if n.op_type == "Cast"
        for a in n.attribute
    )


def required_compute(path_or_model) -> str | None:
    """The least compute capability a GPU needs to run the model (None: any TensorRT GPU)."""
    return versions.FP8_MIN_COMPUTE if uses_fp8(_load(path_or_model)) else None


def _check_gpu(model, target, compute) -> list[Problem]:
    if not uses_fp8(model):
        return []
    why = versions.fp8_refusal(target, compute)
    if why:
        return [Problem("fp8-gpu", why)]
    if compute is None and target not in versions.TARGET_COMPUTE:
        return [
            Problem(
                "fp8-gpu",
                f"FP8 Q/DQ: the target GPU needs compute capability >= "
                f"{versions.FP8_MIN_COMPUTE} (Ada, Hopper, Blackwell; never Orin); "
                "pass --compute to check it",
                severity="warning",
            )
        ]
    return []


def _load(path_or_model) -> onnx.ModelProto:
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    p = Path(path_or_model)
    if not p.is_file():
        raise UserError(f"ONNX model {p} not found")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise UserError(f"cannot read {p} as ONNX: {e}") from None
    # Only types and shapes matter here: drop large weight payloads (dims and data_type stay) so
    # that shape inference does not copy hundreds of MB. Small tensors (shape constants) stay.
    for init in model.graph.initializer:
        if is_large(init):
            init.ClearField("raw_data")
    return model


def _check_opset(model, table, target) -> list[Problem]:
    lo, hi = table["opset_min"], table["opset_max"]
    for imp in model.opset_import:
        if imp.domain in _DEFAULT_DOMAINS and not lo <= imp.version <= hi:
            return [
                Problem(
                    "opset",
                    f"default-domain opset {imp.version} is outside TensorRT "
                    f"{target}'s parser range {lo}–{hi}; re-export with --opset {hi} "
                    f"or lower",
                )
            ]
    return []


def _check_ops(model, table, target, plugins) -> list[Problem]:
    out = []
    supported = table["supported"]
    for node in model.graph.node:
        name = node.name or f"<{node.op_type} #{list(model.graph.node).index(node)}>"
        if node.op_type in plugins:
            out += _check_plugin_node(node, name, plugins[node.op_type])
        elif node.domain in _DEFAULT_DOMAINS:
            if node.op_type not in supported:
                out.append(
                    Problem(
                        "unsupported-op",
                        f"{node.op_type} is not supported by the "
                        f"TensorRT {target} ONNX parser (onnx-tensorrt "
                        "docs/operators.md)",
                        name,
                    )
                )
        else:
            out.append(
                Problem(
                    "unknown-op",
                    f"{node.domain}::{node.op_type} is neither a "
                    f"standard op nor one of our plugins ({', '.join(plugins)})",
                    name,
                )
            )
    return out


def _check_plugin_node(node, name, spec) -> list[Problem]:
    attrs = {a.name: a for a in node.attribute}
    out = []
    for key, want in (("plugin_version", spec.version), ("plugin_namespace", spec.namespace)):
        a = attrs.get(key)
        if a is None:
            out.append(
                Problem(
                    "plugin-attr",
                    f"{node.op_type} lacks string attribute {key} "
                    f"(expected {want!r}); without it TensorRT ≥10.15 may prefer a "
                    "local function and 10.3 cannot pick the creator version",
                    name,
                )
            )
        elif a.type != onnx.AttributeProto.STRING or a.s.decode() != want:
            got = (
                a.s.decode()
                if a.type == onnx.AttributeProto.STRING
                else onnx.helper.get_attribute_value(a)
            )
            out.append(
                Problem(
                    "plugin-version" if key == "plugin_version" else "plugin-namespace",
                    f"{key} is {got!r}, the registered creator has {want!r}",
                    name,
                )
            )
    kinds = {
        "int": onnx.AttributeProto.INT,
        "float": onnx.AttributeProto.FLOAT,
        "floats": onnx.AttributeProto.FLOATS,
    }
    for field in spec.fields:
        a = attrs.get(field.name)
        if a is None:
            out.append(
                Problem(
                    "plugin-attr",
                    f"{node.op_type} lacks attribute {field.name!r} declared by its creator",
                    name,
                )
            )
        elif a.type != kinds[field.type]:
            out.append(
                Problem(
                    "plugin-attr",
                    f"{field.name} is an ONNX "
                    f"{onnx.AttributeProto.AttributeType.Name(a.type)}, the creator "
                    f"reads {field.type} (int→int32, float→float32)",
                    name,
                )
            )
    if "num_heads" in attrs and attrs["num_heads"].type == onnx.AttributeProto.INT:
        h = attrs["num_heads"].i
        for field in spec.fields:
            if field.type != "floats" or field.name not in attrs:
                continue
            n = (
                field.length
                if isinstance(field.length, int)
                else ({"H*H": h * h, "H": h}[field.length])
            )
            if len(attrs[field.name].floats) != n:
                out.append(
                    Problem(
                        "plugin-shape",
                        f"{field.name} has "
                        f"{len(attrs[field.name].floats)} values, num_heads={h} needs "
                        f"{n} ({field.length})",
                        name,
                    )
                )
        why = limit_violation(node.op_type, h)
        if why:
            out.append(
                Problem(
                    "plugin-limit",
                    f"{why}; fuse with --attention onnx (or th=onnx) to run this op as plain ONNX",
                    name,
                )
            )
    return out


def _check_functions(model, plugins) -> list[Problem]:
    return [
        Problem(
            "function-shadows-plugin",
            f"local function {f.domain or '<default>'}::{f.name} has a plugin's name: "
            "TensorRT 10.3 would import its body instead of the plugin. Build from the "
            "model without functions (model.fused.onnx), not the verification copy",
            f.name,
        )
        for f in model.functions
        if f.name in plugins
    ]


def _tensor_types(model):
    """(tensor name, ONNX elem type, where) for every typed value the graph declares."""
    g = model.graph
    try:  # intermediate types; shape inference tolerates the unknown plugin ops
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph.value_info
    except Exception:
        inferred = g.value_info
    for vi in g.input:
        yield vi.name, vi.type.tensor_type.elem_type, "input"
    for vi in g.output:
        yield vi.name, vi.type.tensor_type.elem_type, "output"
    for vi in inferred:
        yield vi.name, vi.type.tensor_type.elem_type, "value"
    for init in g.initializer:
        yield init.name, init.data_type, "initializer"
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield (node.output[0] if node.output else node.name), a.t.data_type, "constant"
            if node.op_type == "Cast" and a.name == "to":
                yield (node.output[0] if node.output else node.name), a.i, "cast"


def _check_types(model, table, target) -> list[Problem]:
    allowed = set(table["data_types"]) - {"DOUBLE"}
    quantized = set(table["quantized_types"])
    io = {vi.name for vi in model.graph.input} | {vi.name for vi in model.graph.output}
    consumers: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for slot, i in enumerate(node.input):
            consumers.setdefault(i, []).append((node.op_type, slot))
    out, seen = [], set()
    for name, elem, where in _tensor_types(model):
        if elem == 0 or (name, elem) in seen:  # 0: UNDEFINED (type not known here)
            continue
        seen.add((name, elem))
        tname = type_name(elem)
        if tname not in allowed:
            why = (
                "TensorRT has no fp64 type"
                if tname == "DOUBLE"
                else f"not among TensorRT {target}'s ONNX data types"
            )
            out.append(Problem("dtype", f"{where} {name!r} is {tname}: {why}", name))
        elif tname == "UINT8" and name not in io:
            out.append(
                Problem(
                    "uint8-internal",
                    f"{where} {name!r} is UINT8; TensorRT accepts "
                    "UINT8 only as a network input or output",
                    name,
                )
            )
        elif tname in quantized:
            # A QuantizeLinear's zero point (slot 2) carries the output type: it must be int8.
            bad = [
                op
                for op, slot in consumers.get(name, [])
                if op != "DequantizeLinear" and (op, slot) != ("QuantizeLinear", 2)
            ]
            if bad:
                out.append(
                    Problem(
                        "quantized-use",
                        f"{tname} tensor {name!r} feeds "
                        f"{', '.join(sorted(set(bad)))}; TensorRT supports quantized "
                        "types only through DequantizeLinear",
                        name,
                        "warning",
                    )
                )
    return out
