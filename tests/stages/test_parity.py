"""Parity ladder: every stage compared with Paddle, thresholds as data, bisect, the stage chain."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pipeline.errors import UserError
from pipeline.parity import metrics as M
from pipeline.stages.parity import ParityError, parity_ladder


def test_metrics_and_thresholds():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 10))
    out = ref.copy()
    out[:5] = out[:5][:, ::-1]  # 5 of 50 rows disagree
    labels = ref.argmax(1)
    f = M.stage_figures(ref, out, labels)
    assert f["top1_agreement"] == pytest.approx(0.9) and f["acc_top1"] == pytest.approx(0.9)
    r = M.stage_figures(ref, ref, labels)
    lim = M.load_thresholds({"fp16": {"min_top1_agreement": 0.95}})
    assert M.violations("fp16", f, r, lim)
    assert M.violations("int8", f, r, lim) == [] or "drop" in M.violations("int8", f, r, lim)[0]
    assert "10.00 pt" in M.violations("int8", f, r, lim)[0]
    with pytest.raises(Exception, match="unknown threshold"):
        M.load_thresholds({"fp16": {"min_agreement": 1}})


def test_first_jump_and_labels():
    names = M.checkpoint_labels(2, 9)
    assert names[:3] == ["patch embed", "block 0 attn", "block 0 mlp"]
    assert names[5] == "class block 0 attn" and names[-1] == "class block 1 mlp"
    assert M.first_jump([1e-7, 1e-7, 2e-7, 5e-3, 6e-3, 6e-3]) == 3


def _corrupt_copy(xxs1, tmp_path, nth_fc1: int):
    """An artifact dir whose 'fp16' stage is model.onnx with one fc1 weight scrambled."""
    from pipeline.stages.precision import prepare

    d = tmp_path / "art"
    d.mkdir()
    shutil.copy(xxs1.onnx, d / "model.onnx")
    m = onnx.load(str(xxs1.onnx))
    prepare(m)
    inits = {i.name: i for i in m.graph.initializer}
    fc1 = [
        n.input[1]
        for n in m.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and list(inits[n.input[1]].dims) == [192, 768]
    ]
    w = inits[fc1[nth_fc1]]
    a = numpy_helper.to_array(w)
    w.CopyFrom(
        numpy_helper.from_array(
            np.random.default_rng(0).permutation(a.ravel()).reshape(a.shape) * 1000, w.name
        )
    )
    onnx.save(m, str(d / "model.fp16.onnx"))
    return d


@pytest.mark.parametrize("nth_fc1,block", [(0, "block 0 mlp"), (1, "class block 0 mlp")])
def test_bisect_names_the_broken_block(xxs1, tmp_path, nth_fc1, block):
    d = _corrupt_copy(xxs1, tmp_path, nth_fc1=nth_fc1)
    # γ = 1e-5 hides a broken patch-token block from the logits (the class token barely reads
    # it): exactly the case where the per-block view is needed, so bisect fp16 by name
    parity_ladder(
        d,
        preset=xxs1.preset,
        images=4,
        bisect=["fp16"],
        progress=False,
        raise_on_violation=False,
        thresholds={"fp16": {"min_cosine": 1.0}},
    )
    rec = json.loads((d / "parity.json").read_text())
    assert rec["bisect"]["fp16"]["first_jump"] == block
    md = (d / "parity.md").read_text()
    assert "**FAIL**" in md and f"First jump: **{block}**" in md
    assert (d / "parity.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ParityError, match="fp16: cosine") as e:
        parity_ladder(
            d,
            preset=xxs1.preset,
            images=2,
            progress=False,
            thresholds={"fp16": {"min_cosine": 1.0}},
        )
    assert e.value.exit_code == 1


def test_stage_chain_and_report(xxs1, tmp_path):
    """export → fuse(+verify) → to_fp16 → to_int8 → parity_ladder, as `build` chains them."""
    from pipeline.stages.fuse import fuse
    from pipeline.stages.precision import to_fp16
    from pipeline.stages.quantize import to_int8

    d = tmp_path / "chain"
    d.mkdir()
    shutil.copy(xxs1.onnx, d / "model.onnx")
    shutil.copy(xxs1.out / "manifest.json", d / "manifest.json")
    fuse(d / "model.onnx", d / "model.fused.onnx", attention="plugin", verify=True, expect_blocks=1)
    to_fp16(d / "model.fused.onnx", d / "model.fp16.onnx")
    to_int8(
        d / "model.fused.onnx",
        d / "model.int8.onnx",
        calib_data=xxs1.jpegs,
        images=16,
        parity_images=16,
        progress=False,
    )
    rec = parity_ladder(d, preset=xxs1.preset, data=xxs1.jpegs, images=16, progress=False)
    assert list(rec["stages"]) == ["paddle", "onnx", "fused", "fp16", "int8"]
    assert rec["labelled"] and rec["violations"] == []
    for name in ("onnx", "fused"):
        assert rec["stages"][name]["max_abs"] < 1e-4
    assert rec["stages"]["fp16"]["cosine_min"] > 0.9999
    assert rec["stages"]["int8"]["cosine_min"] > 0.999
    md = (d / "parity.md").read_text()
    for row in ("| paddle |", "| onnx |", "| fused |", "| fp16 |", "| int8 |"):
        assert row in md
    man = json.loads((d / "manifest.json").read_text())["stages"]
    assert {"export", "fuse", "fp16", "int8", "parity"} <= set(man)
    assert man["fp16"]["kept_fp32"], "folded γ = 1e-5 weights must be kept fp32"
    assert all("folded LayerScale" in k["reason"] for k in man["fp16"]["kept_fp32"])


def test_engine_without_tensorrt_is_skipped_not_fatal(xxs1, tmp_path):
    from pipeline.trt import env

    if env.tensorrt_module() is not None:
        pytest.skip("TensorRT present: the engine would run")
    d = tmp_path / "art"
    d.mkdir()
    shutil.copy(xxs1.onnx, d / "model.onnx")
    (d / "model.fp16.engine").write_bytes(b"not an engine")
    rec = parity_ladder(d, preset=xxs1.preset, images=2, progress=False)
    assert list(rec["stages"]) == ["paddle", "onnx"]
    assert "tensorrt" in rec["skipped"]["engine:fp16"]
    # bisecting it needs the TensorRT host: one line says so
    with pytest.raises(UserError, match="engine:fp16: the engine did not run here"):
        parity_ladder(d, preset=xxs1.preset, images=2, progress=False, bisect="engine:fp16")
    assert "| engine:fp16 | skipped:" in (d / "parity.md").read_text()


@pytest.mark.slow
def test_ladder_on_trained_digits(digits, tmp_path):
    """The whole chain on real predictions: calibrate on the train split, ladder on held-out
    (another folder, so the whole of it): default thresholds hold, accuracy reported per stage."""
    from pipeline.stages.fuse import fuse
    from pipeline.stages.precision import to_fp16
    from pipeline.stages.quantize import to_fp8, to_int8

    d = tmp_path / "art"
    shutil.copytree(digits.out, d)
    fuse(d / "model.onnx", d / "model.fused.onnx", expect_blocks=digits.preset.depth)
    to_fp16(d / "model.fused.onnx", d / "model.fp16.onnx")
    to_int8(
        d / "model.fused.onnx",
        d / "model.int8.onnx",
        calib_data=digits.train,
        method="percentile",
        progress=False,
    )
    to_fp8(d / "model.fused.onnx", d / "model.fp8.onnx", calib_data=digits.train, progress=False)
    rec = parity_ladder(
        d,
        preset=digits.preset,
        weights=digits.weights,
        data=digits.heldout,
        images=360,
        progress=False,
    )
    st = rec["stages"]
    assert rec["images"] == 360 and rec["violations"] == []
    assert st["paddle"]["acc_top1"] > 0.9
    assert st["fp16"]["top1_agreement"] >= 0.995
    assert st["int8"]["top1_drop_pt"] <= 1.0
    assert st["fp8"]["top1_drop_pt"] <= 1.0 and st["fp8"]["top1_agreement"] >= 0.99
    assert st["fp8"]["cosine_min"] > 0.98  # measured 0.994: E4M3 keeps 3 mantissa bits
    print(
        "\nladder on 360 held-out digits: "
        + ", ".join(
            f"{k} {v['acc_top1']:.2%} (agree {v['top1_agreement']:.2%})" for k, v in st.items()
        )
    )


def _perturbed(model_path, dst, shape, nth: int, scale: float = 0.05):
    """A copy of `model_path` whose `nth` weight of `shape` is multiplied by (1 + scale·noise):
    the size of error a miscompiled block adds."""
    m = onnx.load(str(model_path))
    ws = [i for i in m.graph.initializer if list(i.dims) == list(shape)]
    a = numpy_helper.to_array(ws[nth])
    noise = np.random.default_rng(0).standard_normal(a.shape).astype(a.dtype)
    ws[nth].CopyFrom(numpy_helper.from_array(a * (1 + scale * noise), ws[nth].name))
    onnx.save(m, str(dst))
    return dst


@pytest.mark.parametrize(
    "shape,nth,block,fix",
    [((192, 768), 0, "block 0 mlp", "MLP"), ((192, 384), 0, "class block 0 attn", "--attention")],
)
def test_engine_bisect_names_the_perturbed_block(fast_path, tmp_path, shape, nth, block, fix):
    """The engine bisect's comparison on recorded per-block outputs: the checkpoints a marked
    engine returns (the LayerNorm inputs of the model it was built from, by name), recorded here
    from a copy with one block perturbed, against the fp32 ONNX. Without TensorRT the outputs
    come from ONNX Runtime; tests/gpu runs the same comparison on a real marked engine."""
    from pipeline.runners import open_runner
    from pipeline.trt.bisect import checkpoint_names

    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    bad = _perturbed(fast_path.fused, tmp_path / "model.fp16.onnx", shape, nth)
    names = checkpoint_names(onnx.load(str(bad)))
    _, taps = open_runner("fp16", bad, taps=True).run(x, taps=True)
    np.savez(tmp_path / "recorded.npz", **{f"t{i}": t for i, t in enumerate(taps)})
    recorded = np.load(tmp_path / "recorded.npz")
    engine_taps = [recorded[f"t{i}"] for i in range(len(names))]

    _, ref = open_runner("fused", fast_path.fused, taps=True).run(x, taps=True)
    b = M.bisect_report(ref, engine_taps, fast_path.preset.depth)
    assert b["first_jump"] == block and fix in b["remedy"], b
    k = b["checkpoints"].index(block)
    assert max(b["rel_error"][:k]) < 1e-5 < b["rel_error"][k]  # clean before, error from there
    clean = M.bisect_report(ref, ref, fast_path.preset.depth)
    assert clean["first_jump"] is None and clean["remedy"] is None
