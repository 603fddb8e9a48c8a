"""fold_layerscale: γ ⊙ (h @ W + b) → h @ (W·γ) + b·γ, marked for the FP16 stage."""

import numpy as np

from pipeline.passes import fold_layerscale
from pipeline.passes.fold_layerscale import MARKER
from tests.support.blocks import ops, outputs, residual_layerscale, run_pass, sample


def test_gamma_folds_into_the_linear_and_is_marked():
    model = residual_layerscale(gamma=0.5)
    out, count, ctx = run_pass(fold_layerscale, model)
    assert count == 1 and ops(out) == ["MatMul", "Add", "Add", "Identity"]
    assert len(ctx.folded_gamma) == 1 and not ctx.folded_gamma[0]["fp16_flush_risk"]
    assert all(n.doc_string.startswith(MARKER) for n in out.graph.node[:2])
    x = sample((2, 5, 16))
    np.testing.assert_allclose(outputs(out, x), outputs(model, x), rtol=0, atol=1e-5)


def test_tiny_gamma_is_flagged_as_an_fp16_flush_risk():
    _, count, ctx = run_pass(fold_layerscale, residual_layerscale(gamma=1e-6))
    assert count == 1 and ctx.folded_gamma[0]["fp16_flush_risk"]
