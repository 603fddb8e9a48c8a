"""explain: class-attention maps from the deployed ONNX, checked against Paddle, drawn per head."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from pipeline.runners.attention import OnnxAttention


def _image(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((240, 260, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_cli_writes_maps_that_agree_with_paddle(fast_path, cli, tmp_path):
    """Strong γ, so the last class-attention layer reads blocks a miswiring would change."""
    imgs = [_image(tmp_path / f"img{i}.png", i) for i in range(2)]
    maps = tmp_path / "maps"
    r = cli(
        "explain",
        *imgs,
        "--model",
        "cait_xxs_24",
        "--depth",
        "1",
        "--weights",
        fast_path.weights,
        "--onnx",
        fast_path.fused,
        "--maps",
        maps,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Paddle agrees within" in r.stdout
    rec = json.loads((maps / "manifest.json").read_text())["stages"]["explain"]
    assert rec["paddle_max_abs"] <= 1e-4 and rec["heads"] == 4 and rec["tokens"] == 197
    for i in range(2):
        m = np.load(maps / f"img{i}.attention.npy")
        assert m.shape == (4, 197) and m.dtype == np.float32
        np.testing.assert_allclose(m.sum(-1), 1.0, rtol=0, atol=1e-5)  # each head over N + 1
        assert m[:, 1:].max() > 1.1 * m[:, 1:].mean()  # not a flat map: something to draw
        assert (maps / f"img{i}.attention.png").read_bytes()[:4] == b"\x89PNG"


def test_unreadable_image_is_one_line_and_writes_nothing(fast_path, cli, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    r = cli("explain", bad, "--model", "cait_xxs_24", "--onnx", fast_path.fused)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "bad.jpg" in errors[0], r.stderr[-2000:]
    assert not (fast_path.fused.parent / "explain").exists()


def test_shifted_object_shifts_the_map(fast_path, tmp_path):
    """Without position embeddings every layer up to the class attention treats the patches as
    a set, so rolling the image by whole patches rolls the map by as many patches, exactly. A map
    taken from the wrong tensor, token or grid orientation fails this."""
    m = onnx.load(str(fast_path.fused))
    pos = [i for i in m.graph.initializer if list(i.dims) == [1, 196, 192]]
    assert len(pos) == 1  # the position embedding
    pos[0].CopyFrom(numpy_helper.from_array(np.zeros((1, 196, 192), np.float32), pos[0].name))
    onnx.save(m, str(tmp_path / "no_pos.onnx"))
    runner = OnnxAttention(tmp_path / "no_pos.onnx")

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (1, 3, 224, 224)).astype(np.float32)
    x[:, :, 5 * 16 : 8 * 16, 1 * 16 : 4 * 16] += 2.0  # a bright object, patches rows 5–7, cols 1–3
    shifted = np.roll(x, 6 * 16, axis=3)  # six patches to the right

    def grid(a):
        return runner.run(a)[0, :, 1:].reshape(4, 14, 14)

    before, after = grid(x), grid(shifted)
    np.testing.assert_allclose(after, np.roll(before, 6, axis=2), rtol=0, atol=1e-5)
    # the object stands out in the map (random weights: not necessarily brighter), and its
    # attention moved with it, six patches to the right
    contrast = before[:, 5:8, 1:4].mean(axis=(1, 2)) / before.mean(axis=(1, 2))
    assert np.abs(contrast - 1).max() > 0.05, contrast
    np.testing.assert_allclose(after[:, 5:8, 7:10], before[:, 5:8, 1:4], rtol=0, atol=1e-5)
    assert np.abs(after - before).max() > 1e-3  # the map did change


def test_maps_from_a_graph_without_class_attention_are_refused(tmp_path):
    from pipeline.errors import UserError
    from tests.support.graphs import tiny_classifier

    onnx.save(tiny_classifier(), str(tmp_path / "tiny.onnx"))
    with pytest.raises(UserError, match="no Softmax"):
        OnnxAttention(tmp_path / "tiny.onnx")
