"""Attention variants: the `--attention` grammar, the candidates it allows, and the candidate
models derived from one fused model (each checked against it with ONNX Runtime)."""

import onnx
import pytest

from pipeline.contract import CLASS_ATTENTION, DOMAIN, PLUGIN_OPS, TALKING_HEADS
from pipeline.errors import UserError
from pipeline.stages.fuse import fuse
from pipeline.stages.precision import to_fp16
from pipeline.stages.variants import candidates, describe, parse_attention, variants_stage

TH, CA = TALKING_HEADS, CLASS_ATTENTION


@pytest.mark.parametrize(
    "text,expected",
    [
        ("auto", {TH: "auto", CA: "auto"}),
        ("onnx", {TH: "onnx", CA: "onnx"}),
        ("th=plugin,ca=onnx", {TH: "plugin", CA: "onnx"}),
        ("ca=onnx", {TH: "auto", CA: "onnx"}),
    ],
)
def test_parse_attention(text, expected):
    assert parse_attention(text) == expected


@pytest.mark.parametrize("text", ["plugins", "th=fast", "xx=plugin", "th:plugin"])
def test_bad_attention_names_the_grammar(text):
    with pytest.raises(UserError, match=r"ca \(CaitClassAttention\), th .*plugin, onnx, auto"):
        parse_attention(text)


def test_candidates_per_choice():
    names = lambda choice, lowered=frozenset(): [  # noqa: E731
        c.name for c in candidates(parse_attention(choice), lowered)
    ]
    assert names("auto") == ["plugin", "ca", "th", "plugin-free"]
    assert names("plugin") == ["plugin"] and names("onnx") == ["plugin-free"]
    assert names("th=plugin") == ["plugin", "th"]
    assert names("auto", lowered={TH}) == ["ca", "plugin-free"]  # past the plugin's limit
    with pytest.raises(UserError, match="th=plugin"):
        candidates(parse_attention("th=plugin"), lowered={TH})
    assert describe(parse_attention("th=plugin,ca=auto")) == "ca=auto,th=plugin"


def _domains(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node if n.domain == DOMAIN}


@pytest.fixture(scope="module")
def fused(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    rec = fuse(
        exported("cait_xxs_24", 2),
        out / "model.fused.onnx",
        attention="auto",
        verify=False,
        expect_blocks=2,
    )
    return rec.path


def test_candidates_of_the_fp32_and_fp16_models(fused):
    fp16 = to_fp16(fused, fused.parent / "model.fp16.onnx").path
    cands = candidates(parse_attention("auto"))
    for model in (fused, fp16):
        rec = variants_stage(model, cands, kept_plugins=PLUGIN_OPS)
        assert rec.outputs["plugin"] == model
        assert _domains(rec.outputs["th"]) == {TH} and _domains(rec.outputs["ca"]) == {CA}
        assert _domains(rec.outputs["plugin-free"]) == set()
        assert set(rec["candidates"]) == {"th", "ca", "plugin-free"}
        assert variants_stage(model, cands, kept_plugins=PLUGIN_OPS).reused


def test_explicit_per_op_fuse(exported, tmp_path, cli):
    dst = tmp_path / "model.fused.onnx"
    r = cli("fuse", exported("cait_xxs_24", 2), "-o", dst, "--attention", "th=plugin,ca=onnx")
    assert r.returncode == 0, r.stderr
    assert _domains(dst) == {TH}
