"""The shipped CUDA kernels, run through the host emulation (plugins/common/cudaEmu.h), against
the NumPy reference of the design §2 contract.

Error measure: max |out - ref| / max |ref| (outputs of the post-mix change sign, so an
element-wise relative error is meaningless near zero). Tolerances: fp32 1e-5, fp16 2e-3.
"""
import numpy as np
import pytest

from . import reference

TOL = {np.float32: 1e-5, np.float16: 2e-3}
DTYPE_CODE = {np.float32: 0, np.float16: 1}
BIG_SMEM = 160 * 1024


def _ptr(a):
    return a.ctypes.data_as(__import__("ctypes").c_void_p)


def _rel_err(out, ref):
    return float(np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max())


def _th_smem(rows, H, N, d):
    return 4 * (rows * H * N + rows * d + 2 * (H * H + H))


def _stream_smem(rows, chunk, H, d):
    return 4 * (rows * H * d + rows * H * chunk + 2 * rows * H + 2 * (H * H + H))


FULL_ROW, STREAMING = 1, 2


def plan(lib, H, N, d, smem, variant=0):
    out = np.zeros(4, np.int64)
    lib.cait_emu_talking_heads_plan(H, N, d, smem, variant, _ptr(out))
    return tuple(int(x) for x in out)  # (variant, rows, chunk, smem bytes)


def _mixing(rng, H):
    w1 = (rng.standard_normal((H, H)) / np.sqrt(H) + np.eye(H)).astype(np.float32)
    w2 = (rng.standard_normal((H, H)) / np.sqrt(H) + np.eye(H)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(H)).astype(np.float32)
    b2 = (0.01 * rng.standard_normal(H)).astype(np.float32)
    return w1.ravel(), b1, w2.ravel(), b2


def run_talking_heads(lib, qkv, H, scale, mix, smem, variant=0):
    B, N, C3 = qkv.shape
    d = C3 // 3 // H
    out = np.full((B, N, H * d), np.nan, qkv.dtype)
    w1, b1, w2, b2 = (np.ascontiguousarray(m, np.float32) for m in mix)
    rc = lib.cait_emu_talking_heads(DTYPE_CODE[qkv.dtype.type], B, N, H, d, scale, _ptr(w1), _ptr(b1),
                                    _ptr(w2), _ptr(b2), _ptr(qkv), _ptr(out), smem, variant)
    assert rc == 0, f"launch failed with cudaError {rc}"
    return out


def run_class_attention(lib, q, k, v, H, scale, smem=48 * 1024):
    B, T, C = k.shape
    out = np.full((B, 1, C), np.nan, q.dtype)
    rc = lib.cait_emu_class_attention(DTYPE_CODE[q.dtype.type], B, T, H, C // H, scale, _ptr(q), _ptr(k),
                                      _ptr(v), _ptr(out), smem)
    assert rc == 0, f"launch failed with cudaError {rc}"
    return out


# Full-row kernel, (H, N, d, rows per block): N is never a multiple of the row tile, so every
# case has a partial last tile; the row tiles mirror the presets (16 rows for H = 4, a few for 16).
TH_CASES = [(4, 37, 8, 16), (6, 29, 8, 7), (8, 37, 16, 5), (16, 23, 8, 3), (8, 21, 48, 4)]
# Streaming kernel, (H, N, d, rows, keys per chunk): N a multiple of neither.
TH_STREAM_CASES = [(4, 37, 8, 16, 8), (6, 29, 8, 16, 16), (16, 27, 8, 16, 8), (8, 45, 16, 5, 8)]


def _check_talking_heads(lib, dtype, H, N, d, smem, variant, seed):
    rng = np.random.default_rng(seed)
    B = 2
    qkv = rng.standard_normal((B, N, 3 * H * d)).astype(dtype)
    scale = np.float32(d ** -0.5)
    mix = _mixing(rng, H)
    out = run_talking_heads(lib, qkv, H, scale, mix, smem, variant)
    ref = reference.talking_heads(qkv, H, scale, *mix)
    assert np.isfinite(out).all(), "non-finite output (a read of unwritten shared memory is NaN-poisoned)"
    err = _rel_err(out, ref)
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("H,N,d,rows", TH_CASES, ids=[f"H{c[0]}-N{c[1]}-d{c[2]}-r{c[3]}" for c in TH_CASES])
def test_talking_heads_matches_reference(emulated_kernels, dtype, H, N, d, rows):
    smem = _th_smem(rows, H, N, d)
    assert emulated_kernels.cait_emu_talking_heads_rows(H, N, d, smem) == rows
    assert plan(emulated_kernels, H, N, d, smem, FULL_ROW) == (FULL_ROW, rows, 0, smem)
    _check_talking_heads(emulated_kernels, dtype, H, N, d, smem, FULL_ROW, 1000 * H + N)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("H,N,d,rows,chunk", TH_STREAM_CASES,
                         ids=[f"H{c[0]}-N{c[1]}-d{c[2]}-r{c[3]}-k{c[4]}" for c in TH_STREAM_CASES])
def test_talking_heads_streaming_matches_reference(emulated_kernels, dtype, H, N, d, rows, chunk):
    smem = _stream_smem(rows, chunk, H, d)
    assert plan(emulated_kernels, H, N, d, smem, STREAMING) == (STREAMING, rows, chunk, smem)
    _check_talking_heads(emulated_kernels, dtype, H, N, d, smem, STREAMING, 2000 * H + N)


@pytest.mark.parametrize("H,N,expected", [(4, 196, FULL_ROW), (8, 196, FULL_ROW), (4, 576, FULL_ROW),
                                          (8, 576, STREAMING), (16, 576, STREAMING), (16, 784, STREAMING)])
def test_auto_plan_on_orin(emulated_kernels, H, N, expected):
    """163 KiB per block (Orin, A100): full rows while >= 11 rows fit, else streaming."""
    variant, rows, chunk, smem = plan(emulated_kernels, H, N, 48, 163 * 1024)
    assert variant == expected and rows >= 1 and smem <= 163 * 1024


def test_talking_heads_fp16_scores_beyond_fp16_exp_range(emulated_kernels):
    """Scores around ±40: exp() of them overflows fp16 (max 65504 = e^11.09)."""
    rng = np.random.default_rng(7)
    B, N, H, d = 2, 33, 4, 16
    qkv = (4.0 * rng.standard_normal((B, N, 3 * H * d))).astype(np.float16)
    scale = np.float32(d ** -0.5)
    mix = _mixing(rng, H)
    q = qkv.reshape(B, N, 3, H, d)[:, :, 0].astype(np.float64)
    k = qkv.reshape(B, N, 3, H, d)[:, :, 1].astype(np.float64)
    raw = scale * np.einsum("bihd,bjhd->bhij", q, k)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(raw.astype(np.float16))).any(), "inputs do not stress fp16 softmax"
    ref = reference.talking_heads(qkv, H, scale, *mix)
    for variant in (FULL_ROW, STREAMING):
        out = run_talking_heads(emulated_kernels, qkv, H, scale, mix, BIG_SMEM, variant)
        assert np.isfinite(out).all(), variant
        assert _rel_err(out, ref) <= TOL[np.float16], variant


def test_talking_heads_rejects_shapes_that_do_not_fit(emulated_kernels):
    H, N, d = 16, 784, 48
    assert emulated_kernels.cait_emu_talking_heads_rows(H, N, d, 163 * 1024) == 3  # m_48_448 on Orin
    assert emulated_kernels.cait_emu_talking_heads_rows(H, N, d, 48 * 1024) == 0
    tiny = 2 * 1024  # neither one full score row nor one streaming row of C = 768 fits
    assert plan(emulated_kernels, H, N, d, tiny)[1] == 0
    qkv = np.zeros((1, N, 3 * H * d), np.float32)
    out = np.zeros((1, N, H * d), np.float32)
    mix = [np.zeros(H * H, np.float32), np.zeros(H, np.float32)] * 2
    rc = emulated_kernels.cait_emu_talking_heads(0, 1, N, H, d, 1.0, *(_ptr(m) for m in mix), _ptr(qkv),
                                                 _ptr(out), tiny, 0)
    assert rc != 0


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
    scale = np.float32(d ** -0.5)
    out = run_class_attention(emulated_kernels, q, k, v, H, scale)
    ref = reference.class_attention(q, k, v, H, scale)
    assert np.isfinite(out).all(), "non-finite output (a read of unwritten shared memory is NaN-poisoned)"
    err = _rel_err(out, ref)
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]}"


def test_class_attention_fp16_scores_beyond_fp16_exp_range(emulated_kernels):
    rng = np.random.default_rng(11)
    B, T, H, d = 2, 65, 4, 16
    q = (6.0 * rng.standard_normal((B, 1, H * d))).astype(np.float16)
    k = (6.0 * rng.standard_normal((B, T, H * d))).astype(np.float16)
    v = rng.standard_normal((B, T, H * d)).astype(np.float16)
    scale = np.float32(d ** -0.5)
    raw = scale * np.einsum("bihd,bjhd->bhij", q.reshape(B, 1, H, d).astype(np.float64),
                            k.reshape(B, T, H, d).astype(np.float64))
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(raw.astype(np.float16))).any()
    out = run_class_attention(emulated_kernels, q, k, v, H, scale)
    ref = reference.class_attention(q, k, v, H, scale)
    assert np.isfinite(out).all()
    assert _rel_err(out, ref) <= TOL[np.float16]


def test_python_plan_mirror_matches_launcher(emulated_kernels):
    """The README tables come from tests/plugins/nvcc_resources.py; keep its mirror honest."""
    from .nvcc_resources import ARCHS, PRESETS, SM, talking_heads_plan
    names = {1: "full-row", 2: "streaming"}
    for _, H, N in PRESETS:
        for a in ARCHS:
            variant, rows, chunk, smem = plan(emulated_kernels, H, N, 48, SM[a]["smem_block"])
            assert (names[variant], rows, chunk, smem) == talking_heads_plan(H, N, 48, SM[a]["smem_block"]), (H, N, a)
