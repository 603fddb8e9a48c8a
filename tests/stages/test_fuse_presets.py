"""Every zoo preset (reduced depth) fuses to L talking-heads + 2 class-attention plugin nodes and
verifies against the unfused export with ONNX Runtime; the output carries no local functions, no
H·N² score tensor, exactly the plugin fields of the contract, and the folded-γ markers."""

from __future__ import annotations

import json

import onnx
import pytest

from pipeline.contract import CLASS_ATTENTION, DOMAIN, TALKING_HEADS
from pipeline.passes.fold_layerscale import MARKER, gamma_entries
from pipeline.presets import PRESETS
from pipeline.stages.fuse import fuse
from tests.support.presets import CI_DEPTH as DEPTH
from tests.support.presets import ZOO

FIELDS = {
    TALKING_HEADS: {
        "num_heads",
        "scale",
        "pre_weight",
        "pre_bias",
        "post_weight",
        "post_bias",
        "plugin_version",
        "plugin_namespace",
    },
    CLASS_ATTENTION: {"num_heads", "scale", "plugin_version", "plugin_namespace"},
}


@pytest.mark.parametrize("name", ZOO)
def test_every_preset_fuses_and_verifies(name, exported, workdir):
    depth = DEPTH[name]
    preset = PRESETS[name]
    src = exported(name, depth)
    dst, report = workdir / f"{name}.fused.onnx", workdir / f"{name}.report.json"
    fig = fuse(src, dst, attention="plugin", verify=True, expect_blocks=depth, report=report)

    assert (fig["talking_heads"], fig["class_attention"]) == (depth, 2)
    v = fig["verify"]
    assert v["max_abs"] <= 1e-4 and v["batches"] == [1, 3]
    assert v["attention_outputs_checked"] == depth + 2 and v["attention_max_rel"] <= 1e-4

    model = onnx.load(str(dst))
    assert not model.functions, "the model for TensorRT must not carry local functions"
    plugins = [n for n in model.graph.node if n.domain == DOMAIN]
    assert sorted(n.op_type for n in plugins) == sorted(
        [TALKING_HEADS] * depth + [CLASS_ATTENTION] * 2
    )
    # The class attention's k and v linears were merged into one MatMul + Split.
    assert sum(n.op_type == "Split" for n in model.graph.node) == 2
    for n in plugins:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert set(attrs) == FIELDS[n.op_type]
        assert attrs["num_heads"] == preset.num_heads
        assert attrs["scale"] == 1.0  # folded into the q weights
        assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b""
        if n.op_type == TALKING_HEADS:
            H = preset.num_heads
            assert len(attrs["pre_weight"]) == len(attrs["post_weight"]) == H * H
            assert len(attrs["pre_bias"]) == len(attrs["post_bias"]) == H

    rep = json.loads(report.read_text())
    assert rep["before"]["score_tensors"] > 0
    assert rep["after"]["score_tensors"] == 0, "an H·N² score tensor survived the fusion"
    assert rep["after"]["unknown_shape_tensors"] == 0
    assert (
        rep["after"]["activation_bytes_per_image_fp16"]
        < rep["before"]["activation_bytes_per_image_fp16"]
    )

    # γ markers: metadata list, node doc_strings, initializer doc_strings (2 per block).
    entries = gamma_entries(model)
    assert len(entries) == 2 * depth + 2 * 2 == len(rep["folded_gamma"])
    marked = {n.name for n in model.graph.node if n.doc_string.startswith(MARKER)}
    assert {e["matmul"] for e in entries} | {e["add"] for e in entries} <= marked
    inits = {i.name for i in model.graph.initializer if i.doc_string == MARKER}
    assert {e["weight"] for e in entries} <= inits


@pytest.mark.parametrize("name", ["cait_xxs_24", "cait_xs_24_384"])
def test_onnx_fast_path(name, exported, workdir):
    """--attention onnx: plugin-free, verified, head mixing without transposes of the scores."""
    src = exported(name, DEPTH[name])
    dst, report = workdir / f"{name}.fast.onnx", workdir / f"{name}.fast.json"
    fig = fuse(src, dst, attention="onnx", verify=True, expect_blocks=DEPTH[name], report=report)
    assert fig["verify"]["max_abs"] <= 1e-4
    model = onnx.load(str(dst))
    assert not model.functions and not any(n.domain == DOMAIN for n in model.graph.node)
    assert all(o.domain != DOMAIN for o in model.opset_import)
    rep = json.loads(report.read_text())
    # Without the plugin the scores are still written, but fewer times (no transposed copies).
    assert (
        0 < rep["after"]["score_bytes_per_image_fp16"] < rep["before"]["score_bytes_per_image_fp16"]
    )
    assert (
        rep["after"]["activation_bytes_per_image_fp16"]
        < rep["before"]["activation_bytes_per_image_fp16"]
    )
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in inferred.graph.value_info
    }
    N = PRESETS[name].num_patches
    for n in model.graph.node:
        if n.op_type == "Transpose":
            dims = shapes.get(n.input[0], [])
            assert dims.count(N) < 2, f"Transpose of a score tensor {dims}"


def test_static_batch_export_fuses(exported, tmp_path):
    """A static-batch graph (batch 2 fixed in the I/O) fuses and verifies at its own batch."""
    model = onnx.load(str(exported("cait_xxs_24", 1)))
    for vi in (model.graph.input[0], model.graph.output[0]):
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_value = 2
    src = tmp_path / "static.onnx"
    onnx.save(model, str(src))
    fig = fuse(src, tmp_path / "f.onnx", verify=True, expect_blocks=1)
    assert (fig["talking_heads"], fig["class_attention"]) == (1, 2)
    assert fig["verify"]["batches"] == [2] and fig["verify"]["max_abs"] <= 1e-4
