"""pipeline/contract/specs.py must mirror the C++ creators: name, version, namespace and fields.

The creators cannot run without libnvinfer, so their declarations are parsed from the source.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.contract import SPECS, node_attrs
from pipeline.contract import specs as plugin_specs

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
SOURCES = {
    "CaitTalkingHeadsAttention": (
        "talkingHeadsAttentionPlugin/talkingHeadsAttentionPlugin.h",
        "talkingHeadsAttentionPlugin/talkingHeadsAttentionPlugin.cpp",
    ),
    "CaitClassAttention": (
        "classAttentionPlugin/classAttentionPlugin.h",
        "classAttentionPlugin/classAttentionPlugin.cpp",
    ),
}
CPP_TYPE = {"kINT32": "int", "kFLOAT32": "float"}


def creator_declaration(op):
    header, source = (PLUGINS / p for p in SOURCES[op])
    consts = dict(
        re.findall(
            r'constexpr char const\* k\w+_PLUGIN_(NAME|VERSION|NAMESPACE)\{"([^"]*)"\}',
            header.read_text(),
        )
    )
    ctor = re.search(
        r"(\w+)PluginCreator::\1PluginCreator\(\)\s*\{(.*?)\n\}", source.read_text(), re.S
    )
    assert ctor, f"creator constructor not found in {source}"
    body = ctor.group(2)
    fields = re.findall(
        r'PluginField\("(\w+)",\s*nullptr,\s*PluginFieldType::(k\w+),\s*(\d+)\)', body
    )
    return consts, fields


@pytest.mark.parametrize("op", sorted(SPECS))
def test_specs_mirror_creator(op):
    consts, fields = creator_declaration(op)
    spec = SPECS[op]
    assert (consts["NAME"], consts["VERSION"], consts["NAMESPACE"]) == (
        spec.name,
        spec.version,
        spec.namespace,
    )
    assert [f[0] for f in fields] == [f.name for f in spec.fields], "field names or order differ"
    for (name, cpp_type, length), field in zip(fields, spec.fields):
        length = int(length)
        if length == 1:  # one value: an int or a float attribute
            assert field.length == 1 and CPP_TYPE[cpp_type] == field.type, name
        else:  # 0 = variable length, checked against num_heads by the creator
            assert (
                cpp_type == "kFLOAT32" and field.type == "floats" and isinstance(field.length, str)
            ), name


def test_node_attrs_talking_heads():
    H = 4
    attrs = node_attrs(
        "CaitTalkingHeadsAttention",
        num_heads=H,
        scale=np.float32(0.25),
        pre_weight=np.eye(H),
        pre_bias=np.zeros(H),
        post_weight=np.ones((H, H)),
        post_bias=[0.0] * H,
    )
    assert list(attrs) == [f.name for f in SPECS["CaitTalkingHeadsAttention"].fields] + [
        "plugin_version",
        "plugin_namespace",
    ]
    assert attrs["plugin_version"] == "1" and attrs["plugin_namespace"] == ""
    assert isinstance(attrs["num_heads"], int) and isinstance(attrs["scale"], float)
    assert attrs["pre_weight"] == np.eye(H).ravel().tolist()


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(pre_weight=np.eye(3)), "pre_weight"),  # H*H mismatch
        (dict(post_bias=[0.0] * 5), "post_bias"),  # wrong length
        (dict(num_heads=17), "limit"),
        (dict(scale=float("nan")), "finite"),
        (dict(extra=1), "unknown"),
    ],
)
def test_node_attrs_rejects(bad, match):
    H = 4
    values = dict(
        num_heads=H,
        scale=1.0,
        pre_weight=np.eye(H),
        pre_bias=np.zeros(H),
        post_weight=np.eye(H),
        post_bias=np.zeros(H),
    )
    values.update(bad)
    with pytest.raises(ValueError, match=match):
        node_attrs("CaitTalkingHeadsAttention", **values)


def test_node_attrs_missing_field():
    with pytest.raises(ValueError, match="missing"):
        node_attrs("CaitClassAttention", num_heads=4)


def test_onnx_node_from_attrs():
    onnx = pytest.importorskip("onnx")
    attrs = node_attrs("CaitClassAttention", num_heads=4, scale=0.125)
    node = onnx.helper.make_node(
        "CaitClassAttention", ["q", "k", "v"], ["o"], domain="trt.plugins", **attrs
    )
    kinds = {a.name: a.type for a in node.attribute}
    A = onnx.AttributeProto
    assert kinds == {
        "num_heads": A.INT,
        "scale": A.FLOAT,
        "plugin_version": A.STRING,
        "plugin_namespace": A.STRING,
    }


def test_max_heads_matches_kernel():
    header = (PLUGINS / "talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.h").read_text()
    assert (
        int(re.search(r"kThMaxHeads = (\d+);", header).group(1)) == plugin_specs.MAX_TALKING_HEADS
    )
