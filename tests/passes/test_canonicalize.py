"""canonicalize: Slice+Squeeze → Gather and Gemm → MatMul + Add, outputs unchanged."""

import numpy as np

from pipeline.passes import canonicalize
from tests.support.blocks import Graph, ops, outputs, run_pass, sample


def test_slice_squeeze_and_gemm_get_one_spelling():
    g = Graph()
    one = g.op(
        "Slice", "x", g.const([1], np.int64), g.const([2], np.int64), g.const([1], np.int64)
    )  # (B, 1, 8)
    row = g.op("Squeeze", one, g.const([1], np.int64))  # (B, 8)
    y = g.op("Gemm", row, g.weight(8, 8), g.weight(8, scale=0.1))
    model = g.model({"x": ["batch", 3, 8]}, y, ["batch", 8])
    out, count, _ = run_pass(canonicalize, model)
    assert count == 2
    assert {"Gather", "MatMul", "Add"} <= set(ops(out))
    assert not {"Slice", "Squeeze", "Gemm"} & set(ops(out))
    x = sample((2, 3, 8))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-6)
