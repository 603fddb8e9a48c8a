"""Static TensorRT compatibility check (pipeline/trt/check.py) on models built with onnx.helper."""

import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.trt.check import check_onnx
from tests.support.graphs import talking_heads_model, tiny_classifier


def codes(problems, severity="error"):
    return [p.code for p in problems if p.severity == severity]


def test_clean_classifier_passes_every_target():
    for target in ("10.3", "10.16", "11.x"):
        assert check_onnx(tiny_classifier(), trt=target) == []


def test_plugin_node_with_every_field_passes():
    assert codes(check_onnx(talking_heads_model())) == []


def hann_model():
    # HannWindow (opset 17): "N" in the 10.1/10.3 table, "Y" from 10.16 on.
    node = helper.make_node("HannWindow", ["size"], ["win"], name="hann")
    graph = helper.make_graph(
        [node],
        "w",
        [helper.make_tensor_value_info("size", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("win", TensorProto.FLOAT, [None])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_op_that_10_3_lacks():
    problems = check_onnx(hann_model(), trt="10.3")
    assert codes(problems) == ["unsupported-op"]
    assert problems[0].node == "hann" and "HannWindow" in problems[0].message
    assert codes(check_onnx(hann_model(), trt="10.16")) == []


def test_plugin_node_missing_an_attribute():
    problems = check_onnx(talking_heads_model(missing=("post_bias",)))
    assert codes(problems) == ["plugin-attr"]
    assert "post_bias" in problems[0].message and problems[0].node == "th0"


def test_plugin_node_missing_version_and_namespace():
    problems = check_onnx(talking_heads_model(missing=("plugin_version", "plugin_namespace")))
    assert sorted(codes(problems)) == ["plugin-attr", "plugin-attr"]
    assert {"plugin_version", "plugin_namespace"} <= {
        w for p in problems for w in p.message.split()
    }


def test_plugin_field_type():
    model = talking_heads_model()
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    attrs["num_heads"].CopyFrom(helper.make_attribute("num_heads", 4.0))  # float, not int
    problems = check_onnx(model)
    assert codes(problems) == ["plugin-attr"]
    assert "num_heads" in problems[0].message and "int" in problems[0].message


def test_plugin_bias_length():
    model = talking_heads_model()
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    del attrs["post_bias"].floats[-1]
    problems = check_onnx(model)
    assert codes(problems) == ["plugin-shape"] and "post_bias" in problems[0].message


def test_opset_21_for_10_3():
    model = tiny_classifier(opset=21)
    problems = check_onnx(model, trt="10.3")
    assert codes(problems) == ["opset"]
    assert "9–20" in problems[0].message
    assert check_onnx(model, trt="10.16") == []


def test_local_function_named_like_a_plugin():
    problems = check_onnx(talking_heads_model(with_function=True))
    assert codes(problems) == ["function-shadows-plugin"]
    assert problems[0].node == "CaitTalkingHeadsAttention"


def test_double_tensor_is_refused():
    model = tiny_classifier()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    assert "dtype" in codes(check_onnx(model))


FLOAT4E2M1 = 23  # onnx >= 1.18 names it; the pinned onnx 1.17 does not


def cast_model(to: int):
    model = tiny_classifier()
    model.graph.node.append(helper.make_node("Cast", ["logits"], ["c"], to=to, name="cast"))
    model.graph.node.append(helper.make_node("DequantizeLinear", ["c", "s"], ["d"], name="dq"))
    return model


def test_fp4_only_from_10_16():
    assert "dtype" in codes(check_onnx(cast_model(FLOAT4E2M1), trt="10.3"))
    assert "dtype" not in codes(check_onnx(cast_model(FLOAT4E2M1), trt="10.16"))


def test_fp8_e5m2_refused_e4m3_accepted():
    # TensorRT's FP8 is E4M3FN only (the tables list "FP8"; DataType kFP8 is E4M3)
    assert "dtype" in codes(check_onnx(cast_model(TensorProto.FLOAT8E5M2), trt="11.x"))
    assert "dtype" not in codes(check_onnx(cast_model(TensorProto.FLOAT8E4M3FN), trt="10.3"))


def test_fp8_needs_compute_capability_8_9():
    m = cast_model(TensorProto.FLOAT8E4M3FN)
    problems = check_onnx(m, trt="10.3")  # JetPack 6: Orin, 8.7
    assert codes(problems) == ["fp8-gpu"] and "8.7" in problems[0].message
    assert codes(check_onnx(m, trt="11.x", compute="8.6")) == ["fp8-gpu"]  # Ampere
    assert codes(check_onnx(m, trt="11.x")) == []  # GPU unknown: a warning says what it needs
    assert "fp8-gpu" in codes(check_onnx(m, trt="11.x"), "warning")
    for cc in ("8.9", "9.0", "12.0"):
        assert all(p.code != "fp8-gpu" for p in check_onnx(m, trt="10.16", compute=cc))
    assert all(p.code != "fp8-gpu" for p in check_onnx(cast_model(TensorProto.INT8), trt="10.3"))


def test_quantized_type_outside_qdq_warns():
    model = tiny_classifier()
    model.graph.node.append(helper.make_node("Cast", ["logits"], ["i8"], to=TensorProto.INT8))
    model.graph.node.append(helper.make_node("Relu", ["i8"], ["r"], name="relu"))
    assert codes(check_onnx(model), "warning") == ["quantized-use"]


def test_int8_zero_point_of_quantizelinear_is_a_legal_use():
    # Explicit Q/DQ needs an int8 zero point on QuantizeLinear (it sets the output type);
    # the same tensor feeding anything else would still warn.
    import numpy as np
    from onnx import numpy_helper

    model = tiny_classifier()
    model.graph.initializer.extend(
        [numpy_helper.from_array(np.float32(0.1), "qs"), numpy_helper.from_array(np.int8(0), "qz")]
    )
    model.graph.node.append(helper.make_node("QuantizeLinear", ["logits", "qs", "qz"], ["q"]))
    model.graph.node.append(helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["dq"]))
    assert codes(check_onnx(model), "warning") == []
    model.graph.node.append(helper.make_node("Relu", ["qz"], ["bad"], name="relu"))
    assert codes(check_onnx(model), "warning") == ["quantized-use"]


def test_unknown_custom_op():
    model = tiny_classifier()
    model.graph.node.append(
        helper.make_node("Mystery", ["logits"], ["m"], domain="my.ops", name="mystery")
    )
    assert codes(check_onnx(model)) == ["unknown-op"]


def test_cli_exit_codes(cli, tmp_path):
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(tiny_classifier(), str(good))
    onnx.save(tiny_classifier(opset=21), str(bad))
    r = cli("check", good, "--trt", "10.3")
    assert r.returncode == 0, r.stderr
    assert "compatible with TensorRT 10.3" in r.stdout
    r = cli("check", bad, "--trt", "10.3")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error:")
    assert "opset 21" in r.stdout
    assert cli("check", bad, "--trt", "11.x").returncode == 0


@pytest.mark.parametrize("target", ["8.6", "12.0.x"])
def test_cli_unknown_target(cli, tmp_path, target):
    p = tmp_path / "m.onnx"
    onnx.save(tiny_classifier(), str(p))
    r = cli("check", p, "--trt", target)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: TensorRT")
