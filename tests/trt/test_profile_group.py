"""Grouping of trtexec's per-layer profile by CaiT block kind (pipeline/trt/profile.py).

The JSON files below are written by this test in the schema trtexec documents
(samples/common/sampleReporting.cpp: exportJSONProfile / exportJSONTrace; the engine inspector's
JSON for --exportLayerInfo). They are NOT captured trtexec output; layer names follow TensorRT's
conventions (ONNX node names, "a + b" for fusions, "{ForeignNode[first...last]}" for Myelin).
"""

import json

import onnx
import pytest
from onnx import helper

from pipeline.trt import profile as prof


def toy_cait(depth=2, plugins=True):
    """Node sequence of a CaiT graph (types and names only: grouping reads nothing else)."""
    n = []

    def add(op, name):
        n.append(helper.make_node(op, [], [name + "_out"], name=name))

    add("Conv", "patch_conv")
    add("Reshape", "patch_flat")
    add("Add", "pos_add")
    for i in range(depth):
        add("LayerNormalization", f"b{i}_ln1")
        add("MatMul", f"b{i}_qkv")
        if plugins:
            add("CaitTalkingHeadsAttention", f"b{i}_th")
        else:
            add("MatMul", f"b{i}_scores")
            add("MatMul", f"b{i}_premix")
            add("Softmax", f"b{i}_softmax")
            add("MatMul", f"b{i}_postmix")
            add("MatMul", f"b{i}_pv")
        add("MatMul", f"b{i}_proj")
        add("Add", f"b{i}_res1")
        add("LayerNormalization", f"b{i}_ln2")
        add("MatMul", f"b{i}_fc1")
        add("Erf", f"b{i}_gelu")
        add("MatMul", f"b{i}_fc2")
        add("Add", f"b{i}_res2")
    for j in range(2):
        add("LayerNormalization", f"c{j}_ln1")
        add("MatMul", f"c{j}_q")
        if plugins:
            add("CaitClassAttention", f"c{j}_ca")
        else:
            add("Softmax", f"c{j}_softmax")
        add("Add", f"c{j}_res1")
        add("LayerNormalization", f"c{j}_ln2")
        add("MatMul", f"c{j}_fc1")
        add("MatMul", f"c{j}_fc2")
        add("Add", f"c{j}_res2")
    add("LayerNormalization", "final_norm")
    add("Gather", "cls_pick")
    add("MatMul", "head_fc")
    return helper.make_model(helper.make_graph(n, "toy", [], []))


def write_exports(folder, layers):
    """layers: [(name, averageMs, layer-info dict or None)] → the three JSON files."""
    profile = [{"count": 100}] + [
        {"name": name, "timeMs": ms * 100, "averageMs": ms, "medianMs": ms, "percentage": 0.0}
        for name, ms, _ in layers
    ]
    info = {
        "Layers": [dict(Name=name, **(extra or {})) for name, _, extra in layers],
        "Bindings": ["input", "logits"],
    }
    times = [
        {
            "startEnqMs": i,
            "endEnqMs": i + 0.1,
            "startH2dMs": 0,
            "endH2dMs": 0,
            "startComputeMs": i,
            "endComputeMs": i + 1 + i / 100,
            "startD2hMs": 0,
            "endD2hMs": 0,
            "h2dMs": 0,
            "computeMs": 1 + i / 100,
            "d2hMs": 0,
            "latencyMs": 1 + i / 100,
        }
        for i in range(101)
    ]
    for fname, data in (("profile.json", profile), ("layers.json", info), ("times.json", times)):
        (folder / fname).write_text(json.dumps(data))


PLUGIN_LAYERS = [
    ("patch_conv", 0.10, {"LayerType": "CaskConvolution"}),
    ("{ForeignNode[patch_flat...pos_add]}", 0.02, {"LayerType": "Myelin"}),
    ("b0_ln1", 0.03, {"LayerType": "Normalization"}),
    ("b0_qkv", 0.20, {"LayerType": "CaskGemmMatrixMultiply"}),
    ("b0_th", 0.40, {"LayerType": "PluginV3", "Metadata": "[ONNX Layer: b0_th]"}),
    ("b0_proj + b0_res1", 0.07, {"LayerType": "CaskGemmMatrixMultiply"}),
    ("b0_ln2", 0.03, {"LayerType": "Normalization"}),
    ("{ForeignNode[b0_fc1...b0_res2]}", 0.50, {"LayerType": "Myelin"}),
    ("{ForeignNode[b1_ln1...b1_res2]}", 1.00, {"LayerType": "Myelin"}),  # spans kinds: mixed
    ("c0_ca", 0.05, {"LayerType": "PluginV3", "Metadata": "[ONNX Layer: c0_ca]"}),
    ("c1_ca", 0.05, {"LayerType": "PluginV3", "Metadata": "[ONNX Layer: c1_ca]"}),
    ("Reformatting CopyNode for Input Tensor 0 to c0_fc1", 0.01, {"LayerType": "Reformat"}),
    ("c0_fc1 + c0_fc2", 0.08, {"LayerType": "CaskGemmMatrixMultiply"}),
    ("head_fc", 0.02, {"LayerType": "CaskGemmMatrixMultiply"}),
]


def test_node_kinds_by_layernorm_order():
    kinds, order = prof.node_kinds(toy_cait(depth=2))
    assert kinds["patch_conv"] == kinds["pos_add"] == "patch_embed"
    assert kinds["b1_qkv"] == kinds["b1_th"] == kinds["b1_res1"] == "talking_heads"
    assert kinds["b1_fc1"] == kinds["c1_fc2"] == "mlp"
    assert kinds["c0_q"] == kinds["c1_ca"] == "class_attention"
    assert kinds["final_norm"] == kinds["b0_ln2"] == "layernorm"
    assert kinds["head_fc"] == kinds["cls_pick"] == "head"
    assert order[0] == "patch_conv"


def test_node_kinds_of_the_plugin_free_fallback():
    kinds, _ = prof.node_kinds(toy_cait(depth=3, plugins=False))
    assert kinds["b2_softmax"] == kinds["b0_premix"] == "talking_heads"
    assert kinds["c1_softmax"] == "class_attention"


def test_grouping_with_onnx(tmp_path):
    write_exports(tmp_path, PLUGIN_LAYERS)
    g = prof.group_layers(
        prof.load_json(tmp_path / "profile.json"),
        prof.load_json(tmp_path / "layers.json"),
        toy_cait(depth=2),
    )
    ms = {k: round(v["ms"], 6) for k, v in g["groups"].items()}
    assert ms == {
        "patch_embed": 0.12,
        "talking_heads": 0.67,
        "class_attention": 0.10,
        "mlp": 0.58,
        "layernorm": 0.06,
        "head": 0.02,
        "reformat": 0.01,
        "mixed": 1.00,
    }
    assert g["plugins"] == pytest.approx(
        {"CaitTalkingHeadsAttention": 0.40, "CaitClassAttention": 0.10}
    )
    assert g["total_ms"] == pytest.approx(2.56)
    assert sum(v["percent"] for v in g["groups"].values()) == pytest.approx(100.0)


def test_grouping_by_names_without_onnx(tmp_path):
    layers = [
        ("/patch_embed/proj/Conv", 0.1, None),
        ("/blocks.0/norm1/LayerNormalization", 0.2, None),
        ("/blocks.0/mlp/fc1/MatMul + /blocks.0/mlp/act/Erf", 0.3, None),
        ("CaitTalkingHeadsAttention_0", 0.4, None),
        ("/head/MatMul", 0.5, None),
        ("mystery_op", 0.6, None),
    ]
    write_exports(tmp_path, layers)
    g = prof.group_layers(prof.load_json(tmp_path / "profile.json"))
    assert {k: round(v["ms"], 6) for k, v in g["groups"].items()} == {
        "patch_embed": 0.1,
        "layernorm": 0.2,
        "mlp": 0.3,
        "talking_heads": 0.4,
        "head": 0.5,
        "other": 0.6,
    }


def test_summary_images_per_second_and_percentiles(tmp_path):
    write_exports(tmp_path, PLUGIN_LAYERS)
    log = "[I] Throughput: 41.25 qps\n[I] Latency: min = 20 ms"
    s = prof.summarize(
        batch=32,
        qps=prof.parse_qps(log),
        times=prof.load_json(tmp_path / "times.json"),
        profile=prof.load_json(tmp_path / "profile.json"),
        layer_info=prof.load_json(tmp_path / "layers.json"),
        model=toy_cait(),
    )
    assert s["images_per_s"] == pytest.approx(41.25 * 32)
    c = s["gpu_compute_ms"]
    assert c["p50"] == pytest.approx(1.5) and c["p99"] == pytest.approx(1.99)
    assert c["n"] == 101
    text = prof.format_summary(s)
    assert "1320.0 images/s" in text and "talking_heads" in text


def test_profile_cli_from_exports(cli, tmp_path):
    out = tmp_path / "model.engine.profile"
    out.mkdir()
    write_exports(out, PLUGIN_LAYERS)
    (out / "trtexec.log").write_text("[I] Throughput: 10 qps\n")
    onnx.save(toy_cait(), str(tmp_path / "model.fused.onnx"))
    r = cli(
        "profile",
        tmp_path / "model.engine",
        "--batch",
        "8",
        "--from-exports",
        "--onnx",
        tmp_path / "model.fused.onnx",
    )
    assert r.returncode == 0, r.stderr
    assert "80.0 images/s" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"]["groups"]["talking_heads"]["layers"] >= 1


def test_profile_cli_missing_exports(cli, tmp_path):
    r = cli("profile", tmp_path / "model.engine", "--from-exports")
    assert r.returncode == 2 and "times.json not found" in r.stderr
