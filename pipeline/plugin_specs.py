"""The TensorRT plugins of this project, as their creators declare them (plugins/*/…Plugin.cpp).

Single source of truth on the Python side for the fused-op contract (design §2); the graph surgery
emits nodes from it and tests/plugins/test_plugin_specs.py checks it against the C++ creators.

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

__all__ = ["Field", "PluginSpec", "SPECS", "node_attrs", "MAX_TALKING_HEADS"]

# The talking-heads kernel carries its mixing coefficients in the launch parameters (16 heads max).
MAX_TALKING_HEADS = 16


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

    def field_names(self) -> tuple:
        return tuple(f.name for f in self.fields)


SPECS = {
    "CaitTalkingHeadsAttention": PluginSpec(
        name="CaitTalkingHeadsAttention",
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
    ),
    "CaitClassAttention": PluginSpec(
        name="CaitClassAttention",
        version="1",
        namespace="",
        fields=(
            Field("num_heads", "int", 1),
            Field("scale", "float", 1),
        ),
        inputs=("q", "k", "v"),
        outputs=("out",),
    ),
}


def _expected_length(rule, heads):
    if isinstance(rule, int):
        return rule
    return {"H*H": heads * heads, "H": heads}[rule]


def _as_floats(op, name, value):
    try:
        import numpy as np  # optional: accept arrays of any shape, row-major

        flat = np.asarray(value, dtype=np.float64).ravel().tolist()
    except ImportError:  # pragma: no cover
        flat = [float(v) for v in value]
    if not all(math.isfinite(v) for v in flat):
        raise ValueError(f"{op}: field '{name}' holds a non-finite value")
    return [float(v) for v in flat]


def node_attrs(op: str, **values) -> dict:
    """ONNX attributes of one `op` node: every creator field, validated, then the version strings."""
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
    if op == "CaitTalkingHeadsAttention" and heads > MAX_TALKING_HEADS:
        raise ValueError(
            f"{op}: num_heads={heads} exceeds the plugin's limit of {MAX_TALKING_HEADS}"
        )
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
