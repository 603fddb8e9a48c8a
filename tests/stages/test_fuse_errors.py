"""Bad input fails loudly with one line (exit 2); unsafe matches are refused; a miswired fusion
is caught by the verification; external data round-trips."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipeline.contract import DOMAIN, TALKING_HEADS
from pipeline.errors import UserError
from pipeline.stages.fuse import fuse, verify_parity


def _small_cnn(path):
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.1, (8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10, 8)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fcb"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_non_cait_model_fails_with_counts(cli, tmp_path):
    cnn = _small_cnn(tmp_path / "cnn.onnx")
    r = cli("fuse", cnn, "-o", tmp_path / "out.onnx", "--expect-blocks", "2")
    assert r.returncode == 2
    assert "found 0 talking-heads blocks, expected 2" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = cli("fuse", cnn, "-o", tmp_path / "out.onnx")  # no preset known: still refused
    assert r.returncode == 2 and "found 0 talking-heads blocks" in r.stderr
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("content", [b"this is not an onnx model\n", "truncated"])
def test_unreadable_file_is_one_clear_line(cli, tmp_path, exported, content):
    bad = tmp_path / "bad.onnx"
    if content == "truncated":
        data = exported("cait_xxs_24", 1).read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    else:
        bad.write_bytes(content)
    r = cli("fuse", bad, "-o", tmp_path / "out.onnx")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a readable ONNX" in lines[0]


def test_external_consumer_prevents_fusion(tmp_path, exported):
    """A score tensor read outside the block (here: a debugging output) must not be fused away."""
    src = onnx.load(str(exported("cait_xxs_24", 1)))
    softmax = next(n for n in src.graph.node if n.op_type == "Softmax")  # block 0, by structure
    src.graph.node.append(helper.make_node("ReduceMax", [softmax.output[0]], ["probe"], keepdims=0))
    src.graph.output.append(helper.make_tensor_value_info("probe", TensorProto.FLOAT, []))
    path = tmp_path / "probe.onnx"
    onnx.save(src, str(path))
    with pytest.raises(UserError) as e:
        fuse(path, tmp_path / "out.onnx", verify=False, expect_blocks=1)
    msg = str(e.value)
    assert "found 0 talking-heads blocks, expected 1" in msg
    assert "outside the attention subgraph" in msg
    assert not (tmp_path / "out.onnx").exists()


def test_verification_catches_miswired_fusion(tmp_path, exported):
    """Swapping pre- and post-softmax mixing must fail parity (the check can fail)."""
    src = exported("cait_xxs_24", 1)
    fuse(src, tmp_path / "f.onnx", verify=True, expect_blocks=1)
    fused = onnx.load(str(tmp_path / "f.onnx"))
    node = next(n for n in fused.graph.node if n.op_type == TALKING_HEADS)
    attrs = {a.name: a for a in node.attribute}
    pre, post = list(attrs["pre_weight"].floats), list(attrs["post_weight"].floats)
    attrs["pre_weight"].floats[:] = post
    attrs["post_weight"].floats[:] = pre
    with pytest.raises(UserError, match="parity failed"):
        verify_parity(onnx.load(str(src)), fused, probes=[node.output[0]])


def _constants_to_initializers(model):
    """paddle2onnx keeps weights in Constant nodes, which external data cannot move out."""
    keep = []
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            model.graph.initializer.append(t)
        else:
            keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def test_external_data_round_trip(tmp_path, exported):
    src = _constants_to_initializers(onnx.load(str(exported("cait_xxs_24", 1))))
    ext = tmp_path / "ext" / "model.onnx"
    ext.parent.mkdir()
    onnx.save_model(
        src,
        str(ext),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=1024,
    )
    assert ext.stat().st_size < 1 << 20  # the weights really are outside
    dst = tmp_path / "out" / "model.fused.onnx"
    fig = fuse(ext, dst, verify=True, expect_blocks=1)
    assert fig["verify"]["max_abs"] <= 1e-4
    data = dst.with_name("model.fused.onnx.data")
    assert data.exists() and dst.stat().st_size < data.stat().st_size
    reread = onnx.load(str(dst))  # loads its external data
    assert sum(n.domain == DOMAIN for n in reread.graph.node) == 3
    assert not list(dst.parent.glob(".*"))  # no temporary leftovers


@pytest.fixture(scope="module")
def twenty_heads(tmp_path_factory):
    """A small CaiT with 20 heads: more than the talking-heads kernel holds (16), strong γ."""
    from pipeline.presets import Preset
    from pipeline.stages.export import export

    preset = Preset(
        "cait_20_heads",
        img_size=32,
        embed_dim=240,
        depth=1,
        num_heads=20,
        init_scale=0.5,
        num_classes=10,
        zoo=False,
    )
    return export(preset, tmp_path_factory.mktemp("heads20")).path


def test_more_heads_than_the_plugin_holds_is_one_error_line(cli, twenty_heads, tmp_path):
    dst = tmp_path / "model.fused.onnx"
    r = cli("fuse", twenty_heads, "-o", dst)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr
    assert "num_heads=20 exceeds the plugin's limit of 16" in errors[0]
    assert "--attention onnx" in errors[0]
    assert not dst.exists()


def test_more_heads_than_the_plugin_holds_fuse_as_plain_onnx(twenty_heads, tmp_path):
    """No plugin is needed with --attention onnx, so no plugin limit applies; parity holds."""
    rec = fuse(twenty_heads, tmp_path / "model.fused.onnx", attention="onnx", verify=True)
    assert rec["talking_heads"] == 1 and rec["verify"]["max_abs"] <= 1e-4
    model = onnx.load(str(rec.path))
    assert not any(n.domain == DOMAIN for n in model.graph.node)
