"""fuse_talking_heads: the block becomes one plugin node whose attributes reproduce it."""

import numpy as np
from onnx import helper

from pipeline.contract import DOMAIN, TALKING_HEADS
from pipeline.passes import fuse_talking_heads
from tests.support.blocks import ops, outputs, run_pass, sample, talking_heads_block


def test_block_becomes_one_node_with_the_contracts_attributes():
    model = talking_heads_block(H=4, scale=0.35)
    out, count, ctx = run_pass(fuse_talking_heads, model)
    assert count == 1 and ctx.fused[TALKING_HEADS] == 1
    assert ops(out) == ["MatMul", "Add", TALKING_HEADS, "Identity"]
    node = out.graph.node[2]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == DOMAIN and attrs["num_heads"] == 4
    assert abs(attrs["scale"] - 0.35) < 1e-7
    assert len(attrs["pre_weight"]) == 16 and len(attrs["post_bias"]) == 4
    x = sample((2, 5, 32))  # the node's reference decomposition equals the block
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)


def test_a_tensor_read_outside_the_block_is_refused():
    model = talking_heads_block()
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    model.graph.output.append(
        helper.make_tensor_value_info(softmax.output[0], 1, ["batch", 4, 5, 5])
    )
    _, count, ctx = run_pass(fuse_talking_heads, model)
    assert count == 0 and ctx.refused
