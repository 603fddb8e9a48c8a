"""INT8 and FP8 stages: Q/DQ placement as TensorRT wants it, calibration cache, trained-digits
accuracy."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import numpy_helper

from pipeline.errors import UserError
from pipeline.stages import calibrate as cal
from pipeline.stages.quantize import calibration_set, quantizable, to_fp8, to_int8
from tests.support.graphs import float_types_consistent


@pytest.fixture(scope="module")
def xxs1_int8(xxs1, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    dst = out / "model.int8.onnx"
    rec = to_int8(
        xxs1.onnx,
        dst,
        calib_data=xxs1.jpegs,
        images=16,
        method="max",
        parity_images=16,
        progress=False,
    )
    return dst, rec


def test_qdq_placement(xxs1, xxs1_int8):
    dst, rec = xxs1_int8
    m = onnx.load(str(dst))
    onnx.checker.check_model(m)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 19
    assert float_types_consistent(m) == []
    prod = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    init_types = {i.name: i.data_type for i in m.graph.initializer}
    # depth 1: patch conv + (qkv, proj, fc1, fc2) + 2 × (q, k, v, proj, fc1, fc2) + head (1000)
    assert rec["quantized_nodes"] == 1 + 4 + 12 + 1 and rec["not_quantized"] == {}
    n_q = 0
    for n in m.graph.node:
        if (
            n.op_type in ("MatMul", "Conv", "Gemm")
            and n.input[1] in prod
            and prod[n.input[1]].op_type == "DequantizeLinear"
        ):
            n_q += 1
            wdq = prod[n.input[1]]
            w, ws, wz = (inits[i] for i in wdq.input)
            assert w.dtype == np.int8 and not wz.any()  # symmetric weights
            axis = next(a.i for a in wdq.attribute if a.name == "axis")
            assert ws.shape == (w.shape[axis],)  # per output channel
            assert axis == (0 if n.op_type == "Conv" else 1)
            adq = prod[n.input[0]]
            assert adq.op_type == "DequantizeLinear"
            assert prod[adq.input[0]].op_type == "QuantizeLinear"
            assert inits[adq.input[1]].shape == () and inits[adq.input[2]] == 0  # per tensor
            # Q/DQ in the node's dtype: fp16 scales feed fp16 nodes
            assert init_types[adq.input[1]] in (T.FLOAT16, T.FLOAT)
    assert n_q == rec["quantized_nodes"]
    # LayerNorm, Softmax never see Q/DQ; talking-heads H×H mixing (K=4) stays float
    for n in m.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax"):
            assert all(
                prod.get(i) is None or prod[i].op_type != "DequantizeLinear" for i in n.input
            ), n.name
    small = [
        n
        for n in m.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and inits[n.input[1]].ndim == 2
        and min(inits[n.input[1]].shape) < 32
    ]
    assert small, "expected the talking-heads mixing MatMuls to remain float"
    # everything else fp16
    assert rec["nodes"]["fp16"] > 3 * rec["nodes"]["fp32"]


def test_int8_close_to_fp32(xxs1, xxs1_int8):
    from pipeline.numerics import compare, sample_images
    from pipeline.onnx_io import ort_session

    dst, _ = xxs1_int8
    x = sample_images(2, 224)
    ref = ort_session(xxs1.onnx).run(None, {"image": x})[0]
    out = ort_session(dst).run(None, {"image": x})[0]
    assert compare(ref, out)["cosine_min"] > 0.999


def test_method_switch_uses_cache(xxs1, xxs1_int8, monkeypatch):
    """calib.json holds statistics, not scales: another method must not touch the images."""
    dst, rec = xxs1_int8
    cache = dst.parent / "calib.json"
    assert cache.exists() and rec["calibration"]["cache"] == "miss"
    data = json.loads(cache.read_text())
    assert data["key"] == rec["calibration"]["key"]

    def boom(*a, **k):
        raise AssertionError("images re-run although statistics were cached")

    monkeypatch.setattr(cal, "collect", boom)
    scales = {}
    for method in ("entropy", "percentile", "max"):
        r = to_int8(
            xxs1.onnx,
            dst.parent / f"m_{method}.onnx",
            cache=cache,
            calib_data=xxs1.jpegs,
            images=16,
            method=method,
            parity_images=16,
            progress=False,
        )
        assert r["calibration"]["cache"] == "hit"
        m = onnx.load(str(dst.parent / f"m_{method}.onnx"))
        scales[method] = sorted(
            float(numpy_helper.to_array(i))
            for i in m.graph.initializer
            if i.name.endswith("_act_scale")
        )
    assert scales["entropy"] != scales["max"]
    # a different image set is a different key: the images do run
    with pytest.raises(AssertionError, match="re-run"):
        to_int8(
            xxs1.onnx,
            dst.parent / "other.onnx",
            cache=cache,
            calib_data=xxs1.jpegs,
            images=8,
            method="max",
            parity_images=16,
            progress=False,
        )


def test_rest_fp32_variant_has_no_fp16(xxs1, xxs1_int8):
    """rest="fp32": the ORT-CPU flavour — same Q/DQ, no fp16 anywhere, same cached statistics."""
    dst, rec = xxs1_int8
    out = dst.parent / "model.int8_fp32.onnx"
    r = to_int8(
        xxs1.onnx,
        out,
        calib_data=xxs1.jpegs,
        images=16,
        method="max",
        parity_images=16,
        rest="fp32",
        progress=False,
    )
    assert r["calibration"]["cache"] == "hit" and r["quantized_nodes"] == rec["quantized_nodes"]
    m = onnx.load(str(out))
    assert all(i.data_type != T.FLOAT16 for i in m.graph.initializer)
    assert not any(n.op_type == "Cast" for n in m.graph.node)


def test_calibration_and_parity_sets_are_disjoint(xxs1, xxs1_int8):
    """The ladder reads the INT8 record (reserved parity size, seed) and draws the same split."""
    from pipeline.data import ImageFolderDataset, split_calib_parity
    from pipeline.stages.parity import parity_images
    from pipeline.stages.quantize import parity_count

    dst, rec = xxs1_int8
    ds = ImageFolderDataset.from_dir(xxs1.jpegs)
    calib = split_calib_parity(ds.samples, 16, parity_count(len(ds), 16), seed=0).calib
    assert rec["calibration"]["images_used"] == len(calib) == 16
    parity, _, _ = parity_images(dst.parent, xxs1.jpegs, 64)
    assert len(parity) == 16
    assert not {s.path for s in calib} & {s.path for s in parity}


def test_quantizable_skips_tiny_and_activation_matmuls(xxs1):
    m = onnx.load(str(xxs1.onnx))
    from pipeline.stages.precision import prepare

    prepare(m)
    q = quantizable(m)
    ops = {n.name: n.op_type for n in m.graph.node}
    assert sum(ops[k] == "Conv" for k in q) == 1
    mm = [n for n in m.graph.node if n.op_type == "MatMul"]
    assert len(q) < len(mm) + 1  # q·kᵀ, p·v and the H×H mixings are not there


# ---- FP8 -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def xxs1_fp8(fast_path, xxs1, tmp_path_factory):
    """FP8 of the plugin-free fused graph, where the attention's batched MatMuls are visible.
    Strong weights: with the presets' random init the talking-heads' mixed probabilities are
    ~1e-4, below what an fp16 scale holds (that BMM is then left unquantized, and recorded)."""
    dst = tmp_path_factory.mktemp("fp8") / "model.fp8.onnx"
    rec = to_fp8(
        fast_path.fused,
        dst,
        calib_data=xxs1.jpegs,
        images=16,
        parity_images=16,
        progress=False,
    )
    return dst, rec


def test_fp8_qdq_placement(xxs1_fp8):
    """E4M3 weights per channel, activations per tensor; both inputs of every attention BMM
    quantized with DQ feeding the MatMul directly; a Softmax output at the fixed scale 1/448."""
    dst, rec = xxs1_fp8
    m = onnx.load(str(dst))
    onnx.checker.check_model(m)
    assert float_types_consistent(m) == []
    prod = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            assert inits[n.input[2]].data_type == T.FLOAT8E4M3FN
            assert not any(inits[n.input[2]].raw_data)  # zero point 0
    # 1 talking-heads + 2 class-attention blocks, two BMMs each
    assert rec["attention_bmm_nodes"] == 6 and rec["not_quantized"] == {}
    dynamic = [  # MatMuls of two dequantized activations (a weight's DQ reads an initializer)
        n
        for n in m.graph.node
        if n.op_type == "MatMul"
        and all(
            i in prod and prod[i].op_type == "DequantizeLinear" and prod[i].input[0] not in inits
            for i in n.input
        )
    ]
    assert len(dynamic) == 6
    softmax_fed = [
        prod[n.input[0]]
        for n in dynamic
        if prod[prod[prod[n.input[0]].input[0]].input[0]].op_type == "Softmax"
    ]
    assert len(softmax_fed) == 2  # the two class attentions' probabilities
    for dq in softmax_fed:
        s = float(numpy_helper.to_array(inits[dq.input[1]]))
        assert s == pytest.approx(1 / 448, rel=1e-3)
    weights = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weights and all(inits[n.input[0]].data_type == T.FLOAT8E4M3FN for n in weights)
    for n in weights:
        axis = next(a.i for a in n.attribute if a.name == "axis")
        assert list(inits[n.input[1]].dims) == [inits[n.input[0]].dims[axis]]  # per channel
    for n in m.graph.node:  # LayerNorm and Softmax stay float
        if n.op_type in ("LayerNormalization", "Softmax"):
            assert all(i not in prod or prod[i].op_type != "DequantizeLinear" for i in n.input)


def test_fp8_runs_on_onnxruntime_close_to_fp32(fast_path, xxs1_fp8):
    from pipeline.numerics import compare, sample_images
    from pipeline.onnx_io import ort_session
    from pipeline.runners.ort import OrtRunner

    x = sample_images(2, 224)
    ref = ort_session(fast_path.onnx).run(None, {"image": x})[0]
    out = OrtRunner(xxs1_fp8[0]).run(x)
    assert compare(ref, out)["cosine_min"] > 0.99


def test_fp8_refuses_int8_only_calibration(xxs1):
    with pytest.raises(UserError, match="entropy is INT8's"):
        calibration_set(xxs1.jpegs, method="entropy", precision="fp8")


# ---- the trained fixture -------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_int8(digits, tmp_path_factory):
    """INT8 of the trained digits model, per method, calibrated on the train split (512 images);
    accuracy on the full held-out split (360 images, never calibrated on)."""
    from pipeline.data import ImageFolderDataset, iter_batches
    from pipeline.runners.ort import OrtRunner

    out = tmp_path_factory.mktemp("digits_int8")
    ds = ImageFolderDataset.from_dir(digits.heldout)
    batches = list(iter_batches(ds.samples, 32, 120))
    y = np.concatenate([b.labels for b in batches])

    def logits(path):
        st = OrtRunner(path)
        return np.concatenate([st.run(b.images) for b in batches])

    ref = logits(digits.onnx)
    res = {"fp32": float(np.mean(ref.argmax(1) == y))}
    lines = []
    for method in cal.METHODS:
        dst = out / f"model.{method}.onnx"
        rec = to_int8(
            digits.onnx,
            dst,
            calib_data=digits.train,
            images=512,
            method=method,
            cache=out / "calib.json",
            progress=False,
        )
        z = logits(dst)
        res[method] = float(np.mean(z.argmax(1) == y))
        lines.append(
            f"{method}: top-1 {res[method]:.2%}, agreement "
            f"{np.mean(z.argmax(1) == ref.argmax(1)):.2%}, median amax/max "
            f"{rec['calibration']['amax_over_max_median']:.3f}, "
            f"{rec['seconds']:.1f} s (cache {rec['calibration']['cache']})"
        )
    print(f"\nheld-out (360 digits), fp32 top-1 {res['fp32']:.2%}; " + "; ".join(lines))
    return res


@pytest.mark.slow
def test_int8_drop_on_trained_digits(digits_int8):
    res = digits_int8
    assert res["fp32"] > 0.9
    best = max(res[m] for m in cal.METHODS)
    assert 100 * (res["fp32"] - best) <= 1.0, res
