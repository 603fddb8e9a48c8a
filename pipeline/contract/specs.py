"""The TensorRT plugins of this project, as their creators declare them (plugins/*/…Plugin.cpp).

The one Python statement of the fused-op contract (docs/architecture.md, "Fused operators"): the
graph surgery emits nodes from it, the TensorRT checker validates nodes against it, and
tests/contract/test_specs.py checks it against the C++ creators.

API
    SPECS["CaitTalkingHeadsAttention"].fields      -> tuple of Field(name, type, length)
    SPECS[op].name / .version / .namespace         -> "CaitTalkingHeadsAttention", "1", ""
    node_attrs(op, **values) -> dict               -> ONNX attributes of one fused node

`Field.type` is "int" (int32 in TensorRT), "float" (one float32) or "floats" (float32 list).
`Field.length` is the number of values: an int when fixed, or a string naming the rule
("H*H", "H") that node_attrs checks against num_heads.

Example
    >>> node_attrs("CaitClassAttention", num_heads=4, scale=0.125)
    {'num_heads': 4, 'scale': 0.125, 'plugin_version': '1', 'plugin_namespace': ''}

node_attrs returns plain Python values (int, float, list[float]) in the creator's field order,
plus plugin_version="1" and plugin_namespace="" (strings TensorRT's ONNX parser uses to find the
creator); pass it to onnx.helper.make_node(op, inputs, outputs, domain=…, **attrs) or to
onnx_graphsurgeon.Node(op=op, attrs=attrs). It raises ValueError for a missing or unknown field,
a wrong type or a wrong length, with the same rules the C++ creator applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Field",
    "PluginSpec",
    "SPECS",
    "node_attrs",
    "MAX_TALKING_HEADS",
    "TALKING_HEADS",
    "CLASS_ATTENTION",
    "PLUGIN_OPS",
    "DOMAIN",
    "CLASS_BLOCKS",
    "field_names",
    "function_attributes",
    "limit_violation",
    "PluginLimitError",
]

TALKING_HEADS = "CaitTalkingHeadsAttention"
CLASS_ATTENTION = "CaitClassAttention"
# ONNX needs a non-default domain for an op it has no schema for (the checker rejects unknown ops
# in ai.onnx); TensorRT's ONNX parser finds a creator by op_type, plugin_version and
# plugin_namespace, never by domain (10.3), so the domain is ours to choose.
DOMAIN = "trt.plugins"
# Every CaiT preset ends with two class-attention blocks; fusing must find exactly that many.
CLASS_BLOCKS = 2
# The talking-heads kernel carries its mixing coefficients in the launch parameters (16 heads max).
MAX_TALKING_HEADS = 16


class PluginLimitError(ValueError):
    """Valid attributes that this plugin build cannot run (e.g. more heads than the kernel holds).

    The plain-ONNX decomposition has no such limit, so a caller may fall back to it."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # "int" | "float" | "floats"
    length: int | str  # 1, or a rule over num_heads: "H*H", "H"


@dataclass(frozen=True)
class PluginSpec:
    name: str
    version: str
    namespace: str
    fields: tuple
    inputs: tuple
    outputs: tuple
    short: str  # what `--attention th=…,ca=…` calls the op

    def field_names(self) -> tuple:
        return tuple(f.name for f in self.fields)


SPECS = {
    TALKING_HEADS: PluginSpec(
        name=TALKING_HEADS,
        version="1",
        namespace="",
        fields=(
            Field("num_heads", "int", 1),
            Field("scale", "float", 1),
            Field("pre_weight", "floats", "H*H"),
            Field("pre_bias", "floats", "H"),
            Field("post_weight", "floats", "H*H"),
            Field("post_bias", "floats", "H"),
        ),
        inputs=("qkv",),
        outputs=("out",),
        short="th",
    ),
    CLASS_ATTENTION: PluginSpec(
        name=CLASS_ATTENTION,
        version="1",
        namespace="",
        fields=(
            Field("num_heads", "int", 1),
            Field("scale", "float", 1),
        ),
        inputs=("q", "k", "v"),
        outputs=("out",),
        short="ca",
    ),
}


PLUGIN_OPS = frozenset(SPECS)
BY_SHORT = {spec.short: op for op, spec in SPECS.items()}
_VERSION_STRINGS = ("plugin_version", "plugin_namespace")


def field_names(op: str) -> tuple:
    """The creator's field names, in its order."""
    return SPECS[op].field_names()


def function_attributes(op: str) -> list[str]:
    """Attribute names a reference function declares: the fields and the two version strings."""
    return list(field_names(op)) + list(_VERSION_STRINGS)


def _expected_length(rule, heads):
    if isinstance(rule, int):
        return rule
    return {"H*H": heads * heads, "H": heads}[rule]


def _as_floats(op, name, value):
    flat = np.asarray(value, dtype=np.float64).ravel().tolist()  # any shape, row-major
    if not all(math.isfinite(v) for v in flat):
        raise ValueError(f"{op}: field '{name}' holds a non-finite value")
    return [float(v) for v in flat]


def limit_violation(op: str, num_heads: int) -> str | None:
    """Why this plugin build cannot run an `op` node with `num_heads` heads, or None."""
    if op == TALKING_HEADS and num_heads > MAX_TALKING_HEADS:
        return (
            f"{op}: num_heads={num_heads} exceeds the plugin's limit of {MAX_TALKING_HEADS} "
            "(its mixing coefficients travel in the kernel's launch parameters)"
        )
    return None


def node_attrs(op: str, *, check_limits: bool = True, **values) -> dict:
    """ONNX attributes of one `op` node: every creator field, validated, then the version strings.

    `check_limits=False` accepts valid attributes that exceed the kernels' limits (such a node can
    still run as its plain-ONNX decomposition); otherwise they raise PluginLimitError."""
    if op not in SPECS:
        raise ValueError(f"unknown plugin op {op!r}; known: {sorted(SPECS)}")
    spec = SPECS[op]
    missing = [n for n in spec.field_names() if n not in values]
    unknown = sorted(set(values) - set(spec.field_names()))
    if missing or unknown:
        raise ValueError(f"{op}: missing fields {missing}, unknown fields {unknown}")
    heads_value = values["num_heads"]
    if isinstance(heads_value, bool) or int(heads_value) != heads_value or int(heads_value) < 1:
        raise ValueError(f"{op}: num_heads must be a positive int, got {heads_value!r}")
    heads = int(heads_value)
    why = limit_violation(op, heads) if check_limits else None
    if why:
        raise PluginLimitError(why)
    attrs = {}
    for f in spec.fields:
        v = values[f.name]
        if f.type == "int":
            attrs[f.name] = int(v)
        elif f.type == "float":
            fv = float(v)
            if not math.isfinite(fv):
                raise ValueError(f"{op}: field '{f.name}' must be finite, got {v!r}")
            attrs[f.name] = fv
        else:
            flat = _as_floats(op, f.name, v)
            want = _expected_length(f.length, heads)
            if len(flat) != want:
                raise ValueError(
                    f"{op}: field '{f.name}' needs {f.length} = {want} values for "
                    f"num_heads={heads}, got {len(flat)}"
                )
            attrs[f.name] = flat
    attrs["plugin_version"] = spec.version
    attrs["plugin_namespace"] = spec.namespace
    return attrs
