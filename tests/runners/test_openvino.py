"""OpenVINO CPU runner: the same ONNX files as ONNX Runtime, the same numbers within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.numerics import compare, sample_images
from pipeline.runners import open_runner

pytest.importorskip("openvino", reason="openvino not installed (pyproject's runtime dependency)")


@pytest.fixture(scope="module")
def x():
    return sample_images(2, 224, seed=3)


def test_fast_path_and_plugin_graph_match_onnxruntime(fast_path, x, tmp_path):
    """Strong γ: a wrong block would move these logits far beyond 1e-4."""
    from pipeline.stages.fuse import fuse

    plugin = tmp_path / "model.fused.onnx"
    fuse(fast_path.onnx, plugin, attention="plugin", expect_blocks=1)
    for path in (fast_path.fused, fast_path.onnx, plugin):
        ref = open_runner("onnx", path).run(x)
        out = open_runner("onnx", path, runtime="openvino").run(x)
        assert np.abs(out - ref).max() <= 1e-4, path.name
        assert np.abs(ref).max() > 0.1  # logits that a miswired block would change


def test_taps_match_onnxruntime(fast_path, x):
    _, ref = open_runner("fused", fast_path.fused, taps=True).run(x, taps=True)
    _, out = open_runner("fused", fast_path.fused, taps=True, runtime="openvino").run(x, taps=True)
    assert len(out) == len(ref) == 7  # patch embed + 1 block × 2 + 2 class blocks × 2
    for a, b in zip(ref, out):
        np.testing.assert_allclose(b.reshape(a.shape), a, rtol=0, atol=1e-4)


def test_fp16_model_keeps_working(fast_path, x, tmp_path):
    from pipeline.stages.precision import to_fp16

    fp16 = to_fp16(fast_path.fused, tmp_path / "model.fp16.onnx").path
    ref = open_runner("onnx", fast_path.fused).run(x)
    out = open_runner("fp16", fp16, runtime="openvino").run(x)
    assert compare(ref, out)["cosine_min"] > 0.999


def test_unloadable_model_is_one_clear_line(tmp_path):
    import onnx

    from pipeline.errors import UserError
    from tests.support.graphs import talking_heads_model

    m = talking_heads_model()  # a plugin node, not an image classifier
    onnx.save(m, str(tmp_path / "th.onnx"))
    with pytest.raises(UserError) as e:
        open_runner("onnx", tmp_path / "th.onnx", runtime="openvino")
    assert "\n" not in str(e.value)


def test_infer_backend_openvino_matches_onnxruntime(fast_path, cli, tmp_path):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(img)
    lines = {}
    for backend in ("onnxruntime", "openvino"):
        r = cli("infer", "--onnx", fast_path.fused, img, "--topk", "3", "--backend", backend)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"({backend})" in r.stdout
        lines[backend] = r.stdout.splitlines()[1:]
    assert lines["openvino"] == lines["onnxruntime"]  # same classes, same printed probabilities
