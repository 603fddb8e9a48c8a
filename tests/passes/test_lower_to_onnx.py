"""lower_to_onnx: chosen fused ops become their plain-ONNX decomposition; the others stay."""

import numpy as np

from pipeline.contract import CLASS_ATTENTION, DOMAIN, TALKING_HEADS
from pipeline.passes import fuse_class_attention, fuse_talking_heads, lower_to_onnx
from tests.support.blocks import (
    attention_tail,
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


def test_lowering_one_op_then_the_other_keeps_node_names_unique():
    """How attention candidates are derived: talking heads lowered first, class attention later."""
    model = attention_tail()
    fused, _, _ = run_pass(fuse_talking_heads, model)
    fused, _, _ = run_pass(fuse_class_attention, fused)
    once, n1, _ = run_pass(lower_to_onnx, fused, lower={TALKING_HEADS})
    twice, n2, _ = run_pass(lower_to_onnx, once, lower={CLASS_ATTENTION})
    assert (n1, n2) == (1, 1)
    names = [n.name for n in twice.graph.node]
    assert len(names) == len(set(names)) and not any(n.domain == DOMAIN for n in twice.graph.node)
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(twice, x), outputs(model, x), rtol=0, atol=1e-5)
