"""fuse_class_attention: the single-query attention becomes one plugin node."""

import numpy as np
from onnx import helper

from pipeline.contract import CLASS_ATTENTION, DOMAIN
from pipeline.passes import fuse_class_attention
from tests.support.blocks import class_attention_block, outputs, run_pass, sample


def test_block_becomes_one_node():
    model = class_attention_block(H=4, scale=0.25)
    out, count, _ = run_pass(fuse_class_attention, model)
    assert count == 1
    node = next(n for n in out.graph.node if n.op_type == CLASS_ATTENTION)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == DOMAIN and attrs["num_heads"] == 4 and attrs["scale"] == 0.25
    assert not any(n.op_type == "Softmax" for n in out.graph.node)
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)
