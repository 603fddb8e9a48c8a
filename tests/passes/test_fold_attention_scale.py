"""fold_attention_scale: the softmax scale moves into the q columns of the qkv weights."""

import numpy as np
from onnx import numpy_helper

from pipeline.passes import fold_attention_scale
from tests.support.blocks import (
    class_attention_block,
    outputs,
    run_pass,
    sample,
    talking_heads_block,
)


def test_talking_heads_scale_goes_into_the_q_third_only():
    model = talking_heads_block(scale=0.35)
    out, count, _ = run_pass(fold_attention_scale, model)
    assert count == 1
    before = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    after = [numpy_helper.to_array(i) for i in out.graph.initializer if "_W_scaled" in i.name]
    assert len(after) == 1
    w = next(v for v in before.values() if v.shape == after[0].shape)
    C = w.shape[0]
    np.testing.assert_allclose(after[0][:, :C], 0.35 * w[:, :C], rtol=1e-6)
    np.testing.assert_array_equal(after[0][:, C:], w[:, C:])  # k and v untouched
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)


def test_class_attention_scale_folds_too():
    model = class_attention_block()
    out, count, _ = run_pass(fold_attention_scale, model)
    assert count == 1
    x = sample((2, 5, 32))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)
