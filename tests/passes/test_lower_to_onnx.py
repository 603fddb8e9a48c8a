"""lower_to_onnx: chosen fused ops become their plain-ONNX decomposition; the others stay."""

import numpy as np

from pipeline.contract import CLASS_ATTENTION, DOMAIN, TALKING_HEADS
from pipeline.passes import fuse_class_attention, fuse_talking_heads, lower_to_onnx
from tests.support.blocks import (
    class_attention_block,
    ops,
    outputs,
    run_pass,
    sample,
    talking_heads_block,
)


def test_lowered_graph_has_no_plugin_node_and_the_same_outputs():
    model = talking_heads_block()
    fused, _, _ = run_pass(fuse_talking_heads, model)
    out, count, _ = run_pass(lower_to_onnx, fused, lower={TALKING_HEADS})
    assert count == 1
    assert not any(n.domain == DOMAIN for n in out.graph.node)
    assert not any(o.domain == DOMAIN for o in out.opset_import) and not out.functions
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)


def test_ops_not_chosen_stay_plugin_nodes():
    fused, _, _ = run_pass(fuse_class_attention, class_attention_block())
    out, count, _ = run_pass(lower_to_onnx, fused, lower={TALKING_HEADS})
    assert count == 0 and CLASS_ATTENTION in ops(out)
