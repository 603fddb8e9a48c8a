"""Fragment layouts of mma.m16n8k16 / m16n8k8 (f16 inputs, f32 accumulators), stated as CUTLASS
states them (cute's thread-value layouts in include/cute/atom/mma_traits_sm80.hpp):

    (thread, value) -> flat index of the column-major tile, thread = (t0 in 4, t1 in 8),
    lane = t0 + 4 * t1, values in register order (two b16 values per 32-bit register).

    m16n8k16  A (16x16): shape ((4, 8), (2, 2, 2)), stride ((32, 1), (16, 8, 128))
              B (8x16, n + 8k): shape ((4, 8), (2, 2)), stride ((16, 1), (8, 64))
    m16n8k8   A (16x8):  shape ((4, 8), (2, 2)), stride ((32, 1), (16, 8))
              B (8x8, n + 8k): shape ((4, 8), 2), stride ((16, 1), 8)
    C, D      (16x8):    shape ((4, 8), (2, 2)), stride ((32, 1), (16, 8))

This is an independent statement of what plugins/common/cudaEmu.h implements from the PTX ISA
text; tests/plugins/test_warp_layouts.py checks the emulation against it, and
scripts/bench_attention_gpu.py checks a GPU against it.
"""

from __future__ import annotations

import numpy as np


def _coords(shape_t, stride_t, shape_v, stride_v):
    """{lane: [flat index of value 0, 1, ...]} of a cute layout ((4, 8), V):((s0, s1), Vs)."""
    out = {}
    for t1 in range(shape_t[1]):
        for t0 in range(shape_t[0]):
            lane = t0 + shape_t[0] * t1
            base = t0 * stride_t[0] + t1 * stride_t[1]
            vals = []
            for v in np.ndindex(*reversed(shape_v)):  # first mode fastest
                v = tuple(reversed(v))
                vals.append(base + sum(i * s for i, s in zip(v, stride_v)))
            out[lane] = vals
    return out


LAYOUTS = {
    16: dict(
        A=_coords((4, 8), (32, 1), (2, 2, 2), (16, 8, 128)),
        B=_coords((4, 8), (16, 1), (2, 2), (8, 64)),
    ),
    8: dict(A=_coords((4, 8), (32, 1), (2, 2), (16, 8)), B=_coords((4, 8), (16, 1), (2,), (8,))),
}
C_LAYOUT = _coords((4, 8), (32, 1), (2, 2), (16, 8))


def _pack(values16: np.ndarray) -> np.ndarray:
    """Pairs of fp16 values -> uint32 registers, the first in the low half."""
    bits = values16.astype(np.float16).view(np.uint16).astype(np.uint32)
    return bits[0::2] | (bits[1::2] << 16)


def fragments(a: np.ndarray, b: np.ndarray, c: np.ndarray, k: int):
    """Per-lane registers of A (16 x k), B (k x 8) and C (16 x 8): arrays (32, 4), (32, 2), (32, 4)."""
    regs_a = np.zeros((32, 4), np.uint32)
    regs_b = np.zeros((32, 2), np.uint32)
    regs_c = np.zeros((32, 4), np.float32)
    for lane in range(32):
        va = [a[i % 16, i // 16] for i in LAYOUTS[k]["A"][lane]]  # column-major (m, k)
        vb = [b[i // 8, i % 8] for i in LAYOUTS[k]["B"][lane]]  # (n, k) with n fastest
        ra, rb = _pack(np.array(va)), _pack(np.array(vb))
        regs_a[lane, : len(ra)] = ra
        regs_b[lane, : len(rb)] = rb
        regs_c[lane] = [c[i % 16, i // 16] for i in C_LAYOUT[lane]]
    return regs_a, regs_b, regs_c


def accumulators_to_matrix(regs_d: np.ndarray) -> np.ndarray:
    d = np.zeros((16, 8), np.float32)
    for lane in range(32):
        for v, i in enumerate(C_LAYOUT[lane]):
            d[i % 16, i // 16] = regs_d[lane, v]
    return d


def unpack(regs: np.ndarray) -> np.ndarray:
    """uint32 registers -> (..., 2) fp16 values (low half first)."""
    lo = (regs & 0xFFFF).astype(np.uint16).view(np.float16)
    hi = (regs >> 16).astype(np.uint16).view(np.float16)
    return np.stack([lo, hi], axis=-1)


def check_mma(run_probe, rng) -> list[str]:
    """Problems found when `run_probe(k, a_regs, b_regs, c_regs) -> d_regs` is compared with
    D = A B + C for both shapes (empty when the layouts agree)."""
    problems = []
    for k in (16, 8):
        a = rng.integers(-8, 8, (16, k)).astype(np.float16) / 4  # exact in fp16 and in fp32 sums
        b = rng.integers(-8, 8, (k, 8)).astype(np.float16) / 4
        c = rng.integers(-8, 8, (16, 8)).astype(np.float32)
        d = accumulators_to_matrix(run_probe(k, *fragments(a, b, c, k)))
        want = a.astype(np.float32) @ b.astype(np.float32) + c
        if not np.array_equal(d, want):
            problems.append(f"mma k={k}: {int((d != want).sum())} of 128 elements differ")
    return problems


def check_ldmatrix(run_probe, rng) -> list[str]:
    """ldmatrix.x4 of a row-major 16x16 tile (matrices: rows 0-7 | 8-15 x cols 0-7 | 8-15, in the
    order (0,0), (1,0), (0,1), (1,1)) must give the m16n8k16 A fragment of that tile; the .trans
    form of a row-major (k x n) tile gives B fragments. `run_probe(matrix32x8, trans) -> (32, 4)`."""
    problems = []
    tile = (rng.integers(-64, 64, (16, 16)) / 8).astype(np.float16)
    # lane l gives the address of row l % 8 of matrix l // 8: rows of 8 b16 values
    rows = np.zeros((32, 8), np.float16)
    for lane in range(32):
        mat, r = divmod(lane, 8)
        rows[lane] = tile[(mat & 1) * 8 + r, (mat >> 1) * 8 : (mat >> 1) * 8 + 8]
    got = run_probe(rows, 0)
    want_a, _, _ = fragments(tile, np.zeros((16, 8), np.float16), np.zeros((16, 8), np.float32), 16)
    if not np.array_equal(got, want_a):
        problems.append("ldmatrix.x4: registers differ from the m16n8k16 A fragment of the tile")
    # .trans: memory rows are k (16) of a (k x 16 n) tile; matrices (k 0-7 | 8-15) x (n 0-7 | 8-15)
    kn = (rng.integers(-64, 64, (16, 16)) / 8).astype(np.float16)
    for lane in range(32):
        mat, r = divmod(lane, 8)
        rows[lane] = kn[(mat & 1) * 8 + r, (mat >> 1) * 8 : (mat >> 1) * 8 + 8]
    got = run_probe(rows, 1)
    for nt in range(2):
        _, want_b, _ = fragments(
            np.zeros((16, 16), np.float16),
            kn[:, nt * 8 : nt * 8 + 8],
            np.zeros((16, 8), np.float32),
            16,
        )
        if not np.array_equal(got[:, 2 * nt : 2 * nt + 2], want_b):
            problems.append(
                f"ldmatrix.x4.trans: registers {2 * nt}, {2 * nt + 1} differ from the B fragment "
                f"of n-tile {nt}"
            )
    return problems
