"""Plugin node names and attributes, read from `pipeline.plugin_specs` (the plugin engineer's).

The fused nodes must carry exactly the fields the TensorRT creators list (design §2): the
talking-heads op num_heads, scale, pre/post weight and bias; the class-attention op num_heads
and scale; both plugin_version="1" and plugin_namespace="". While `plugin_specs` is not in the
checkout we fall back to the same table typed from design §2.
"""

from __future__ import annotations

TALKING_HEADS = "CaitTalkingHeadsAttention"
CLASS_ATTENTION = "CaitClassAttention"
# ONNX needs a non-default domain for an op it has no schema for (the checker rejects unknown ops
# in ai.onnx); TensorRT's ONNX parser looks plugins up by op_type, plugin_version and
# plugin_namespace, not by domain.
DOMAIN = "trt.plugins"

_FIELDS = {
    TALKING_HEADS: ("num_heads", "scale", "pre_weight", "pre_bias", "post_weight", "post_bias"),
    CLASS_ATTENTION: ("num_heads", "scale"),
}
_STRINGS = {"plugin_version": "1", "plugin_namespace": ""}

try:  # the plugin engineer's single source of truth, when present
    from pipeline import plugin_specs as _specs
except ImportError:  # pragma: no cover - depends on checkout state
    _specs = None


def node_attrs(op: str, **values) -> dict:
    """Attributes for a fused node of type `op`: exactly the creator's fields + version strings."""
    if _specs is not None and hasattr(_specs, "node_attrs"):
        return dict(_specs.node_attrs(op, **values))
    missing = set(_FIELDS[op]) - set(values)
    extra = set(values) - set(_FIELDS[op])
    if missing or extra:
        raise ValueError(f"{op}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}")
    attrs = {k: values[k] for k in _FIELDS[op]}
    attrs.update(_STRINGS)
    return attrs


def field_names(op: str) -> tuple:
    """The creator's field names, in its order."""
    if _specs is not None and hasattr(_specs, "SPECS"):
        return tuple(_specs.SPECS[op].field_names())
    return _FIELDS[op]


def function_attributes(op: str) -> list[str]:
    """Attribute names the reference function declares (fields + the two version strings)."""
    return list(field_names(op)) + list(_STRINGS)
