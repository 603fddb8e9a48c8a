"""The shipped CUDA kernels, run through the host emulation (plugins/common/cudaEmu.h), against
the NumPy reference of the fused-op contract (tests/plugins/reference.py).

Error measure: max |out - ref| / max |ref| (outputs of the post-mix change sign, so an element-wise
relative error is meaningless near zero). Tolerances: fp32 1e-5, fp16 2e-3.
"""

import numpy as np
import pytest

from . import reference
from .emulation import (
    DTYPE_CODE,
    FULL_ROW,
    H200,
    PRESET_SHAPES,
    STREAMING,
    TC_ONE_PASS,
    TC_SPLIT,
    TC_TWO_PASS,
    mixing,
    plan,
    ptr,
    rel_err,
    run_talking_heads,
)

TOL = {np.float32: 1e-5, np.float16: 2e-3}
# Devices as the planner sees them: opt-in shared memory per block, SMs, SM version.
ORIN = dict(smem=163 * 1024, sm_count=16, sm_version=87)
L4 = dict(smem=99 * 1024, sm_count=58, sm_version=89)
T4 = dict(smem=64 * 1024, sm_count=40, sm_version=75)
TC = (TC_ONE_PASS, TC_TWO_PASS)


def _check(lib, dtype, B, H, N, d, *, seed, scale_inputs=1.0, **launch):
    rng = np.random.default_rng(seed)
    qkv = (scale_inputs * rng.standard_normal((B, N, 3 * H * d))).astype(dtype)
    scale = np.float32(d**-0.5)
    mix = mixing(rng, H)
    out = run_talking_heads(lib, qkv, H, scale, mix, **launch)
    assert np.isfinite(out).all(), (
        "non-finite output (a read of unwritten shared memory is NaN-poisoned)"
    )
    err = rel_err(out, reference.talking_heads(qkv, H, scale, *mix))
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]}"
    return err


# ---- CUDA-core kernels (fp32 I/O, sm_75, shapes the tensor-core kernel is not built for) --------


def _th_smem(rows, H, N, d):
    return 4 * (rows * H * N + rows * d + 2 * (H * H + H))


def _stream_smem(rows, chunk, H, d):
    return 4 * (rows * H * d + rows * H * chunk + 2 * rows * H + 2 * (H * H + H))


# (H, N, d, rows per block): N is never a multiple of the row tile, so every case has a partial
# last tile; the row tiles mirror the presets (16 rows for H = 4, a few for 16).
TH_CASES = [(4, 37, 8, 16), (6, 29, 8, 7), (8, 37, 16, 5), (16, 23, 8, 3), (8, 21, 48, 4)]
# (H, N, d, rows, keys per chunk): N a multiple of neither.
TH_STREAM_CASES = [(4, 37, 8, 16, 8), (6, 29, 8, 16, 16), (16, 27, 8, 16, 8), (8, 45, 16, 5, 8)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(
    "H,N,d,rows", TH_CASES, ids=[f"H{c[0]}-N{c[1]}-d{c[2]}-r{c[3]}" for c in TH_CASES]
)
def test_full_row_matches_reference(emulated_kernels, dtype, H, N, d, rows):
    smem = _th_smem(rows, H, N, d)
    assert emulated_kernels.cait_talking_heads_rows(H, N, d, smem) == rows
    device = dict(T4, smem=smem)
    assert plan(emulated_kernels, 2, H, N, d, **device, variant=FULL_ROW)[:4] == (
        FULL_ROW,
        rows,
        0,
        smem,
    )
    _check(emulated_kernels, dtype, 2, H, N, d, seed=1000 * H + N, device=device, variant=FULL_ROW)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(
    "H,N,d,rows,chunk",
    TH_STREAM_CASES,
    ids=[f"H{c[0]}-N{c[1]}-d{c[2]}-r{c[3]}-k{c[4]}" for c in TH_STREAM_CASES],
)
def test_streaming_matches_reference(emulated_kernels, dtype, H, N, d, rows, chunk):
    smem = _stream_smem(rows, chunk, H, d)
    device = dict(T4, smem=smem)
    assert plan(emulated_kernels, 2, H, N, d, **device, variant=STREAMING)[:4] == (
        STREAMING,
        rows,
        chunk,
        smem,
    )
    _check(emulated_kernels, dtype, 2, H, N, d, seed=2000 * H + N, device=device, variant=STREAMING)


def test_cuda_core_plan_without_tensor_cores(emulated_kernels):
    """163 KiB per block, sm_75-class planning: full rows while >= 11 rows fit, else streaming."""
    for H, N, expected in [
        (4, 196, FULL_ROW),
        (8, 196, FULL_ROW),
        (4, 576, FULL_ROW),
        (8, 576, STREAMING),
        (16, 576, STREAMING),
        (16, 784, STREAMING),
    ]:
        variant, rows, _, smem, *_ = plan(
            emulated_kernels, 8, H, N, 48, smem=163 * 1024, sm_version=75
        )
        assert variant == expected and rows >= 1 and smem <= 163 * 1024, (H, N)


def test_cuda_core_scores_beyond_fp16_exp_range(emulated_kernels):
    """Scores around ±40: exp() of them overflows fp16 (max 65504 = e^11.09)."""
    for variant in (FULL_ROW, STREAMING):
        _check(
            emulated_kernels,
            np.float16,
            2,
            4,
            33,
            16,
            seed=7,
            scale_inputs=4.0,
            variant=variant,
            device=dict(T4, smem=160 * 1024),
        )


def test_shapes_that_do_not_fit_are_rejected(emulated_kernels):
    H, N, d = 16, 784, 48
    assert (
        emulated_kernels.cait_talking_heads_rows(H, N, d, 163 * 1024) == 3
    )  # full rows of m_48_448 on Orin
    assert emulated_kernels.cait_talking_heads_rows(H, N, d, 48 * 1024) == 0
    tiny = dict(
        T4, smem=2 * 1024
    )  # neither one full score row nor one streaming row of C = 768 fits
    assert plan(emulated_kernels, 1, H, N, d, fp16=False, **tiny)[1] == 0
    qkv = np.zeros((1, N, 3 * H * d), np.float32)
    mix = [np.zeros(H * H, np.float32), np.zeros(H, np.float32)] * 2
    with pytest.raises(AssertionError, match="launch failed"):
        run_talking_heads(emulated_kernels, qkv, H, 1.0, mix, device=tiny)


# ---- tensor-core kernel -----------------------------------------------------------------------


def _tc_rows(lib, H, N, variant, device=H200):
    """Row tile of a forced variant at batch 32 (the planner's choice without the small-grid rule)."""
    return plan(lib, 32, H, N, 48, **device, variant=variant)[1]


@pytest.mark.parametrize("variant", TC, ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("name,H,N", PRESET_SHAPES, ids=[p[0] for p in PRESET_SHAPES])
def test_tensor_core_every_preset_shape(emulated_kernels, name, H, N, variant):
    """Each preset's attention shape, at the row tile the H200 planner gives the variant."""
    rows = _tc_rows(emulated_kernels, H, N, variant)
    assert rows >= 1, f"{name}: no tile of this variant fits 227 KiB"
    _check(
        emulated_kernels,
        np.float16,
        2 if N <= 196 else 1,
        H,
        N,
        48,
        seed=N + H,
        variant=variant,
        rows=rows,
    )


# (H, N, rows): N a multiple of neither the 32-key chunk nor the 16-key step; row blocks that are
# not whole mix groups or tiles, one and two 16-row tiles; the padded head axis of H = 6.
TC_RAGGED = [
    (4, 37, 16),
    (4, 70, 29),
    (6, 29, 7),
    (6, 70, 25),
    (8, 45, 5),
    (8, 45, 32),
    (16, 40, 9),
    (16, 70, 20),
    (16, 17, 16),
]


@pytest.mark.parametrize("variant", TC, ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("H,N,rows", TC_RAGGED, ids=[f"H{c[0]}-N{c[1]}-r{c[2]}" for c in TC_RAGGED])
def test_tensor_core_ragged_shapes(emulated_kernels, H, N, rows, variant):
    _check(emulated_kernels, np.float16, 2, H, N, 48, seed=3 * N + H, variant=variant, rows=rows)


@pytest.mark.parametrize("variant", TC, ids=["one-pass", "two-pass"])
def test_tensor_core_in_reverse_thread_order(emulated_kernels, variant):
    """Threads scheduled last-to-first: a missing barrier shows up as a read of NaN poison in one of
    the two orders."""
    emulated_kernels.cait_emu_set_reverse_order(1)
    try:
        for H, N, rows in [(16, 40, 9), (6, 70, 25), (4, 37, 30)]:
            _check(emulated_kernels, np.float16, 2, H, N, 48, seed=N, variant=variant, rows=rows)
    finally:
        emulated_kernels.cait_emu_set_reverse_order(0)


@pytest.mark.parametrize("variant", TC, ids=["one-pass", "two-pass"])
@pytest.mark.parametrize("H", [4, 16])
def test_tensor_core_scores_beyond_fp16_exp_range(emulated_kernels, H, variant):
    """Scores around ±40: the fp16 hi + lo split of the pre-mix keeps them as exact as fp32."""
    rng = np.random.default_rng(7)
    B, N, d = 2, 45, 48
    qkv = (4.0 * rng.standard_normal((B, N, 3 * H * d))).astype(np.float16)
    x = qkv.reshape(B, N, 3, H, d).astype(np.float64)
    raw = d**-0.5 * np.einsum("bihd,bjhd->bhij", x[:, :, 0], x[:, :, 1])
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(raw.astype(np.float16))).any(), "inputs do not stress fp16 softmax"
    _check(emulated_kernels, np.float16, B, H, N, d, seed=7, scale_inputs=4.0, variant=variant)


def test_tensor_core_plan_per_preset(emulated_kernels):
    """One pass wherever a block of >= 12 rows fits, else two passes over blocks of up to 32 rows;
    every fp16 preset shape runs on tensor cores from sm_80 on."""
    two_pass = {
        "H200": {"m_36_384", "m_48_448"},
        "Orin": {"m_36_384", "m_48_448"},
        "L4": {"xs_24_384", "s_36_384", "m_36_384", "m_48_448"},
    }
    for dev_name, device in [("H200", H200), ("Orin", ORIN), ("L4", L4)]:
        for name, H, N in PRESET_SHAPES:
            variant, rows, _, smem, threads, *_ = plan(emulated_kernels, 32, H, N, 48, **device)
            assert variant == (TC_TWO_PASS if name in two_pass[dev_name] else TC_ONE_PASS), (
                name,
                dev_name,
            )
            assert 12 <= rows <= 32 and smem <= device["smem"] and threads == 32 * H, (
                name,
                dev_name,
                rows,
            )
            assert rows <= 16 or rows >= 24, (
                "a second mma tile is used only when at least half full"
            )


def test_small_grids_get_one_tile_per_block(emulated_kernels):
    """Batch 1 of xxs_224 is 7 blocks of 32 rows for 132 SMs: the planner takes 16-row blocks."""
    assert plan(emulated_kernels, 1, 4, 196, 48, **H200)[:2] == (TC_ONE_PASS, 16)
    assert plan(emulated_kernels, 32, 4, 196, 48, **H200)[:2] == (TC_ONE_PASS, 32)


def test_tensor_core_only_where_it_applies(emulated_kernels):
    """fp32 I/O, sm_75, head counts or sizes the kernel is not built for: the CUDA-core kernels."""
    assert plan(emulated_kernels, 8, 8, 576, 48, fp16=False, **H200)[0] in (FULL_ROW, STREAMING)
    assert plan(emulated_kernels, 8, 8, 576, 48, **T4)[0] in (FULL_ROW, STREAMING)
    assert plan(emulated_kernels, 8, 12, 196, 48, **H200)[0] in (FULL_ROW, STREAMING)
    assert plan(emulated_kernels, 8, 8, 196, 64, **H200)[0] in (FULL_ROW, STREAMING)
    assert plan(emulated_kernels, 8, 8, 196, 64, **H200, variant=TC_ONE_PASS)[1] == 0


def test_misaligned_tensors_use_the_scalar_kernel(emulated_kernels):
    """qkv not 8-byte aligned: auto falls back to the CUDA-core kernel (still correct); forcing the
    tensor-core kernel is an error, not a misaligned vector load."""
    rng = np.random.default_rng(5)
    B, H, N, d = 1, 4, 37, 48
    storage = rng.standard_normal(B * N * 3 * H * d + 1).astype(np.float16)
    qkv = storage[1:].reshape(B, N, 3 * H * d)  # 2 bytes past an 8-byte boundary
    assert qkv.ctypes.data % 8 != 0
    mix = mixing(rng, H)
    scale = np.float32(d**-0.5)
    out = run_talking_heads(emulated_kernels, qkv, H, scale, mix)
    assert rel_err(out, reference.talking_heads(qkv, H, scale, *mix)) <= TOL[np.float16]
    with pytest.raises(AssertionError, match="launch failed"):
        run_talking_heads(emulated_kernels, qkv, H, scale, mix, variant=TC_ONE_PASS)


def test_empty_batch_is_a_no_op(emulated_kernels):
    qkv = np.zeros((0, 37, 3 * 4 * 48), np.float16)
    out = np.zeros((0, 37, 4 * 48), np.float16)
    mix = [np.eye(4, dtype=np.float32).ravel(), np.zeros(4, np.float32)] * 2
    run_talking_heads(emulated_kernels, qkv, 4, 1.0, mix, out=out)


def _workspace(lib, B, H, N, device=H200):
    """What a plugin would ask TensorRT for at this shape, as a poisoned (NaN) buffer."""
    n = lib.cait_talking_heads_workspace(
        B, H, N, 48, device["smem"], device["sm_count"], device["sm_version"]
    )
    return np.full(max(n // 4, 1), np.nan, np.float32)


# (H, N, rows, splits): ragged key ranges (N not a multiple of 32 per split), more splits than
# fit evenly, a last row tile of 5 rows, the preset shapes at batch 1 as the H200 plan splits them.
TC_SPLITS = [
    (4, 37, 16, 2),
    (6, 70, 16, 3),
    (8, 45, 16, 2),
    (16, 100, 16, 4),
    (4, 196, 16, 7),
    (4, 37, 32, 2),
    (6, 70, 32, 3),
    (16, 100, 32, 4),
    (8, 576, 32, 7),
    (16, 784, 32, 5),
]


@pytest.mark.parametrize(
    "H,N,rows,splits", TC_SPLITS, ids=[f"H{c[0]}-N{c[1]}-r{c[2]}-s{c[3]}" for c in TC_SPLITS]
)
def test_tensor_core_key_splits(emulated_kernels, H, N, rows, splits):
    """Small grids split each tile's keys over blocks: partial statistics, their combination and
    the fp32 sum of the partial outputs match the reference like the unsplit kernel."""
    B = 2 if N <= 100 else 1
    _check(emulated_kernels, np.float16, B, H, N, 48, seed=N + splits, variant=TC_SPLIT, rows=rows,
           splits=splits, workspace=_workspace(emulated_kernels, B, H, N))  # fmt: skip


@pytest.mark.parametrize("rows", [16, 32])
def test_tensor_core_key_splits_in_reverse_thread_order(emulated_kernels, rows):
    emulated_kernels.cait_emu_set_reverse_order(1)
    try:
        _check(emulated_kernels, np.float16, 2, 6, 70, 48, seed=5, variant=TC_SPLIT, rows=rows, splits=3,
               workspace=_workspace(emulated_kernels, 2, 6, 70))  # fmt: skip
    finally:
        emulated_kernels.cait_emu_set_reverse_order(0)


def test_batch_1_plans_key_splits_with_a_workspace(emulated_kernels):
    """Batch 1 on H200 (13-49 tiles of 16 rows for 132 SMs): every preset splits each tile's keys
    over 2-8 blocks when the workspace is there, in tiles of 32 rows where those still give every
    SM a block (N >= 576); never at batch 32 or without a workspace, and never on Orin (16 SMs
    are busy at batch 1)."""
    for name, H, N in PRESET_SHAPES:
        ws = emulated_kernels.cait_talking_heads_workspace(1, H, N, 48, H200["smem"], 132, 90)
        variant, rows, _, _, _, splits, need = plan(
            emulated_kernels, 1, H, N, 48, **H200, workspace=ws
        )
        assert (variant, rows) == (TC_SPLIT, 16 if N == 196 else 32), name
        tiles = -(-N // rows)
        # As many splits as fit the 132 SMs, up to 8 and one 32-key chunk each.
        most = min(8, -(-N // 32), 132 // tiles)
        assert splits == most >= 2, (name, splits, most)
        assert 0 < need <= ws, (name, need, ws)
        assert plan(emulated_kernels, 1, H, N, 48, **H200)[0] != TC_SPLIT, name
        assert plan(emulated_kernels, 32, H, N, 48, **H200, workspace=ws)[0] != TC_SPLIT, name
        ws = emulated_kernels.cait_talking_heads_workspace(1, H, N, 48, ORIN["smem"], 16, 87)
        assert plan(emulated_kernels, 1, H, N, 48, **ORIN, workspace=ws)[0] != TC_SPLIT, name


def test_key_splits_take_16_row_tiles_where_32_rows_do_not_fit(emulated_kernels):
    """A100 (108 SMs, 163 KiB): a 32-row two-pass block of 16 heads needs 165 KiB, so m_448 at
    batch 1 splits 16-row tiles (49 of them, 2 splits each) rather than not at all."""
    a100 = dict(smem=163 * 1024, sm_count=108, sm_version=80)
    args = (a100["smem"], a100["sm_count"], a100["sm_version"])
    ws = emulated_kernels.cait_talking_heads_workspace(1, 16, 784, 48, *args)
    assert plan(emulated_kernels, 1, 16, 784, 48, **a100, workspace=ws)[:2] == (TC_SPLIT, 16)
    assert plan(emulated_kernels, 1, 8, 576, 48, **a100, workspace=ws)[:2] == (TC_SPLIT, 32)


def test_workspace_bound_holds_for_every_shape_up_to_the_largest(emulated_kernels):
    """A plugin reserves the workspace of the profile's largest shape and offers, at enqueue, the
    bound of the running shape: the bound grows with batch and tokens, and the plan made with it
    is the plan made with unlimited workspace (N = 256: 16 tiles, the most splits)."""
    for device in (H200, ORIN):
        args = (device["smem"], device["sm_count"], device["sm_version"])
        for H in (4, 16):
            top = emulated_kernels.cait_talking_heads_workspace(64, H, 784, 48, *args)
            for B in (1, 2, 3, 8, 64):
                for N in (17, 100, 196, 256, 576, 784):
                    ws = emulated_kernels.cait_talking_heads_workspace(B, H, N, 48, *args)
                    assert ws <= top, (device, H, B, N)
                    p = plan(emulated_kernels, B, H, N, 48, **device, workspace=ws)
                    assert p[6] <= ws, (device, H, B, N, p)
                    unlimited = plan(emulated_kernels, B, H, N, 48, **device, workspace=1 << 40)
                    assert p == unlimited, (device, H, B, N, p, unlimited)
    assert emulated_kernels.cait_talking_heads_workspace(1, 12, 196, 48, *args) == 0  # no TC shape


# ---- class attention ----------------------------------------------------------------------------


def run_class_attention(lib, q, k, v, H, scale, smem=48 * 1024):
    B, T, C = k.shape
    out = np.full((B, 1, C), np.nan, q.dtype)
    rc = lib.cait_class_attention(
        DTYPE_CODE[q.dtype.type],
        B,
        T,
        H,
        C // H,
        scale,
        ptr(q),
        ptr(k),
        ptr(v),
        ptr(out),
        smem,
        None,
    )
    assert rc == 0, f"launch failed with cudaError {rc}"
    return out


# (H, T, d): T = N + 1 and larger than the block (256 threads) in some cases.
CA_CASES = [(4, 38, 8), (6, 301, 8), (8, 50, 48), (16, 197, 8)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("H,T,d", CA_CASES, ids=[f"H{c[0]}-T{c[1]}-d{c[2]}" for c in CA_CASES])
def test_class_attention_matches_reference(emulated_kernels, dtype, H, T, d):
    rng = np.random.default_rng(10 * H + T)
    B, C = 3, H * d
    q = rng.standard_normal((B, 1, C)).astype(dtype)
    k = rng.standard_normal((B, T, C)).astype(dtype)
    v = rng.standard_normal((B, T, C)).astype(dtype)
    scale = np.float32(d**-0.5)
    out = run_class_attention(emulated_kernels, q, k, v, H, scale)
    ref = reference.class_attention(q, k, v, H, scale)
    assert np.isfinite(out).all(), (
        "non-finite output (a read of unwritten shared memory is NaN-poisoned)"
    )
    err = rel_err(out, ref)
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]}"


def test_class_attention_fp16_scores_beyond_fp16_exp_range(emulated_kernels):
    rng = np.random.default_rng(11)
    B, T, H, d = 2, 65, 4, 16
    q = (6.0 * rng.standard_normal((B, 1, H * d))).astype(np.float16)
    k = (6.0 * rng.standard_normal((B, T, H * d))).astype(np.float16)
    v = rng.standard_normal((B, T, H * d)).astype(np.float16)
    scale = np.float32(d**-0.5)
    raw = scale * np.einsum(
        "bihd,bjhd->bhij",
        q.reshape(B, 1, H, d).astype(np.float64),
        k.reshape(B, T, H, d).astype(np.float64),
    )
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(raw.astype(np.float16))).any()
    out = run_class_attention(emulated_kernels, q, k, v, H, scale)
    ref = reference.class_attention(q, k, v, H, scale)
    assert np.isfinite(out).all()
    assert rel_err(out, ref) <= TOL[np.float16]
