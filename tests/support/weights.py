"""Checkpoints whose LayerScale γ is large, for every parity test that must be able to fail.

The presets' γ (1e-5, 1e-6) makes every block's branch invisible in the logits: a miswired block
would still pass a 1e-4 logit check. These weights set γ ~ U(0.2, 1) and give the talking-heads
mixing non-zero biases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def strong_weights(preset, path: Path, seed: int = 0) -> Path:
    import paddle

    from pipeline.models import build_model

    model = build_model(preset, seed=seed)
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        a = v.numpy()
        if k.endswith(("gamma_1", "gamma_2")):
            a = rng.uniform(0.2, 1.0, a.shape).astype(a.dtype)
        elif ".proj_l.bias" in k or ".proj_w.bias" in k:
            a = rng.normal(0, 0.5, a.shape).astype(a.dtype)
        state[k] = a
    paddle.save(state, str(path))
    return path
