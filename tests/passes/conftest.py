"""Fixtures of the pass tests: reduced-depth exports whose LayerScale γ is large.

γ = 1e-5 (the presets' init) makes every attention branch invisible in the logits: a miswired
fusion would still pass a 1e-4 logit check. These exports set γ ~ U(0.2, 1) and give the
talking-heads mixing non-zero biases, so the parity checks can fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.presets import get_preset

_CACHE = {}


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


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, depth) → path of model.onnx (reduced depth, strong γ), cached per session."""
    from pipeline.stages.export import export

    def make(name: str, depth: int) -> Path:
        key = (name, depth)
        if key not in _CACHE:
            preset = get_preset(name, depth=depth)
            out = tmp_path_factory.mktemp(f"{name}_d{depth}")
            weights = strong_weights(preset, out / "strong.pdparams")
            _CACHE[key] = export(preset, out, weights=str(weights))
        return _CACHE[key]

    return make


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuse")


def pytest_configure(config):
    os.environ.setdefault("GLOG_minloglevel", "2")
