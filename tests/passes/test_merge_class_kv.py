"""merge_class_kv: the k and v linears of a class-attention node → one MatMul + Split."""

import numpy as np

from pipeline.passes import fuse_class_attention, merge_class_kv
from tests.support.blocks import class_attention_block, ops, outputs, run_pass, sample


def test_k_and_v_read_x_once():
    model = class_attention_block()
    fused, _, _ = run_pass(fuse_class_attention, model)
    out, count, _ = run_pass(merge_class_kv, fused)
    assert count == 1
    assert ops(fused).count("MatMul") == 3 and ops(out).count("MatMul") == 2
    assert "Split" in ops(out)
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)
