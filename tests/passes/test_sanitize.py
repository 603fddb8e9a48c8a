"""sanitize: Identity, `x + 0` and `x · 1` disappear; constants are folded; outputs unchanged."""

import numpy as np

from pipeline.passes import sanitize
from tests.support.blocks import Graph, ops, outputs, run_pass, sample


def test_removes_identity_and_arithmetic_no_ops():
    g = Graph()
    t = g.op("Identity", g.linear("x", 8, 8))
    t = g.op("Add", t, g.const(0.0))  # paddle2onnx's scale as Mul + Add(0)
    t = g.op("Mul", t, g.const(1.0))
    folded = g.op("Mul", g.const(np.full(8, 2.0)), g.const(np.full(8, 3.0)))  # constant subgraph
    model = g.model({"x": ["batch", 8]}, g.op("Add", t, folded), ["batch", 8])
    out, count, _ = run_pass(sanitize, model)
    assert count >= 3
    assert "Identity" not in ops(out)[:-1]  # only the graph output's own Identity
    assert ops(out).count("Mul") == 0 and ops(out).count("Add") == 2  # linear bias + residual
    x = sample((3, 8))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-6)
