"""The fused-op contract, written once: plugin names, fields, kernel limits (`specs`) and the
reference decomposition of each fused op in standard ONNX (`reference`).

Surgery emits nodes from it, the precision stages keep its ops in floating point, the TensorRT
checker validates nodes against it, the runners give ONNX Runtime its decompositions, and the
C++ creators are tested against it.
"""

from pipeline.contract.specs import (
    BY_SHORT,
    CLASS_ATTENTION,
    CLASS_BLOCKS,
    DOMAIN,
    MAX_TALKING_HEADS,
    PLUGIN_OPS,
    SPECS,
    TALKING_HEADS,
    Field,
    PluginLimitError,
    PluginSpec,
    field_names,
    function_attributes,
    limit_violation,
    node_attrs,
)

__all__ = [
    "BY_SHORT",
    "CLASS_ATTENTION",
    "CLASS_BLOCKS",
    "DOMAIN",
    "MAX_TALKING_HEADS",
    "PLUGIN_OPS",
    "SPECS",
    "TALKING_HEADS",
    "Field",
    "PluginLimitError",
    "PluginSpec",
    "field_names",
    "function_attributes",
    "limit_violation",
    "node_attrs",
]
