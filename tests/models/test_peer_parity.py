"""Peer parity: timm's CaiT (the reference PyTorch implementation) vs our Paddle model and ONNX.

This proves the architecture, not just self-consistency: timm builds the model with random
weights, LayerScale γ is scaled up to 0.1–1 so every block matters (at the presets' 1e-5 init the
blocks barely touch the residual stream and a wrong block would go unnoticed), the weights go
through a `.safetensors` file and our `--weights` path, and logits must agree to 1e-4.
"""

import json

import numpy as np
import pytest

from pipeline.numerics import sample_images
from tests.support.timm import import_timm

CASES = [  # (our preset, timm model name, depth in CI)
    ("cait_xxs_24", "cait_xxs24_224", 3),
    ("cait_xxs_24_384", "cait_xxs24_384", 2),
]
TOL = 1e-4


def _timm_checkpoint(timm_name, depth, path, seed=0):
    import torch
    from safetensors.torch import save_file

    timm = import_timm()
    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False, depth=depth).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".gamma_" in name:
                p.copy_(0.1 + 0.9 * torch.rand(p.shape, generator=gen))
            elif name.endswith(".bias"):  # timm inits biases to 0: make them count too
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model


@pytest.mark.parametrize("preset,timm_name,depth", CASES)
def test_timm_vs_paddle_and_onnx(tmp_path, cli, preset, timm_name, depth):
    import paddle
    import torch

    from pipeline.models import load_model
    from pipeline.onnx_io import ort_session
    from pipeline.presets import get_preset

    ref_model = _timm_checkpoint(timm_name, depth, tmp_path / "timm.safetensors")
    p = get_preset(preset, depth=depth)
    x = sample_images(2, p.img_size, seed=7)
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x)).numpy()
    assert np.abs(ref).max() > 0.1, "reference logits too small to prove anything"

    ours, _ = load_model(p, str(tmp_path / "timm.safetensors"))
    got_paddle = ours(paddle.to_tensor(x)).numpy()
    assert np.abs(got_paddle - ref).max() <= TOL

    out = tmp_path / "art"
    r = cli(
        "export",
        "--model",
        preset,
        "--depth",
        depth,
        "--weights",
        tmp_path / "timm.safetensors",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    got_onnx = ort_session(out / "model.onnx").run(["logits"], {"image": x})[0]
    assert np.abs(got_onnx - ref).max() <= TOL
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["export"]["weights"]["origin"] == "timm"
