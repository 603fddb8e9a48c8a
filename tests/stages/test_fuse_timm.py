"""Users bring their own ONNX: timm's CaiT exported by torch.onnx (legacy exporter, opset 17)
fuses with the same passes (Gather split, Gemm q, SDPA's √scale on q and kᵀ, no Identity)."""

from __future__ import annotations

import onnx
import pytest

from pipeline.contract import DOMAIN
from pipeline.stages.fuse import fuse

pytest.importorskip("torch")


@pytest.mark.parametrize(
    "name,depth,dynamic", [("cait_xxs_24", 2, True), ("cait_xs_24_384", 1, False)]
)
def test_timm_export_fuses_and_verifies(name, depth, dynamic, tmp_path, cli):
    from tests.support.timm import export_timm_onnx

    src = export_timm_onnx(
        name, tmp_path / "timm.onnx", depth=depth, gamma=0.5, dynamic_batch=dynamic
    )
    dst = tmp_path / "fused.onnx"
    r = cli(
        "fuse",
        src,
        "-o",
        dst,
        "--verify",
        "--expect-blocks",
        depth,
        "--report",
        tmp_path / "r.json",
    )
    assert r.returncode == 0, r.stderr
    assert "fuse_talking_heads" in r.stdout and "parity: max |Δlogit|" in r.stdout
    fused = onnx.load(str(dst))
    ops = [n.op_type for n in fused.graph.node if n.domain == DOMAIN]
    assert ops.count("CaitTalkingHeadsAttention") == depth
    assert ops.count("CaitClassAttention") == 2
    # timm's SDPA scale (√s on q and on kᵀ) ends up folded into the q weights as well.
    scales = [a.f for n in fused.graph.node for a in n.attribute if a.name == "scale"]
    assert scales == [1.0] * (depth + 2)
    fig = fuse(src, tmp_path / "fast.onnx", attention="onnx", verify=True, expect_blocks=depth)
    assert fig["verify"]["max_abs"] <= 1e-4
