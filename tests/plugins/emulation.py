"""Build and load the C ABI of the kernels (plugins/capi/kernelsCApi.cpp) for the host emulation.

The build directory persists under build/ so that reruns are incremental.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pipeline.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
EMU_BUILD = ROOT / "build" / "plugins-emulation"
P, I, F, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_longlong  # noqa: E741

# talking-heads variants (cait::TalkingHeadsVariant)
AUTO, FULL_ROW, STREAMING, TC_ONE_PASS, TC_TWO_PASS, TC_SPLIT = 0, 1, 2, 3, 4, 5
VARIANT_NAMES = {
    FULL_ROW: "full-row",
    STREAMING: "streaming",
    TC_ONE_PASS: "tc 1-pass",
    TC_TWO_PASS: "tc 2-pass",
    TC_SPLIT: "tc split",
}


DTYPE_CODE = {np.float32: 0, np.float16: 1}
# The planner's view of H200: opt-in shared memory per block, SMs, SM version.
H200 = dict(smem=227 * 1024, sm_count=132, sm_version=90)
# The talking-heads shapes of the zoo: (name, H, N), one preset per distinct (heads, tokens),
# read from the preset table (head size 48 everywhere); s_36_384 and m_48_448 are the presets the
# performance goal names.
PRESET_SHAPES = [
    (name.removeprefix("cait_"), PRESETS[name].num_heads, PRESETS[name].num_patches)
    for name in (
        "cait_xxs_24",
        "cait_xxs_24_384",
        "cait_xs_24_384",
        "cait_s_24",
        "cait_s_36_384",
        "cait_m_36_384",
        "cait_m_48_448",
    )
]


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def rel_err(out, ref):
    """max |out - ref| / max |ref| (outputs of the post-mix change sign: an element-wise relative
    error is meaningless near zero)."""
    return float(np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max())


def mixing(rng, H):
    """Talking-heads weights strong enough that a wrong head mix changes the output: identity plus
    N(0, 1/H), biases 0.1 and 0.01."""
    w1 = (rng.standard_normal((H, H)) / np.sqrt(H) + np.eye(H)).astype(np.float32)
    w2 = (rng.standard_normal((H, H)) / np.sqrt(H) + np.eye(H)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(H)).astype(np.float32)
    b2 = (0.01 * rng.standard_normal(H)).astype(np.float32)
    return w1.ravel(), b1, w2.ravel(), b2


def run_talking_heads(
    lib,
    qkv,
    H,
    scale,
    mix,
    *,
    device=H200,
    variant=AUTO,
    rows=0,
    out=None,
    workspace=None,
    splits=0,
):
    """`workspace`: a NumPy array offered as the launch's workspace (key splits need one)."""
    B, N, C3 = qkv.shape
    d = C3 // 3 // H
    if out is None:
        out = np.full((B, N, H * d), np.nan, qkv.dtype)
    w1, b1, w2, b2 = (np.ascontiguousarray(m, np.float32) for m in mix)
    ws = None if workspace is None else ptr(workspace)
    ws_bytes = 0 if workspace is None else workspace.nbytes
    rc = lib.cait_talking_heads(
        DTYPE_CODE[qkv.dtype.type],
        B,
        N,
        H,
        d,
        scale,
        ptr(w1),
        ptr(b1),
        ptr(w2),
        ptr(b2),
        ptr(qkv),
        ptr(out),
        device["smem"],
        device["sm_count"],
        device["sm_version"],
        variant,
        rows,
        ws,
        ws_bytes,
        splits,
        None,
    )
    assert rc == 0, f"launch failed with cudaError {rc}"
    return out


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """ctypes signatures of the C ABI (shared by the emulated and the CUDA build)."""
    lib.cait_talking_heads.argtypes = [
        I,
        I,
        I,
        I,
        I,
        F,
        P,
        P,
        P,
        P,
        P,
        P,
        L,
        I,
        I,
        I,
        I,
        P,
        L,
        I,
        P,
    ]
    lib.cait_talking_heads.restype = I
    lib.cait_talking_heads_rows.argtypes = [I, I, I, L]
    lib.cait_talking_heads_rows.restype = I
    lib.cait_talking_heads_plan.argtypes = [I, I, I, I, I, L, I, I, I, I, L, I, P]
    lib.cait_talking_heads_plan.restype = None
    lib.cait_talking_heads_workspace.argtypes = [I, I, I, I, L, I, I]
    lib.cait_talking_heads_workspace.restype = L
    lib.cait_class_attention.argtypes = [I, I, I, I, I, F, P, P, P, P, L, P]
    lib.cait_class_attention.restype = I
    lib.cait_probe_mma.argtypes = [I, P, P, P, P]
    lib.cait_probe_mma.restype = I
    lib.cait_probe_ldmatrix.argtypes = [P, I, P, P]
    lib.cait_probe_ldmatrix.restype = I
    lib.cait_prepare.argtypes = [L]
    lib.cait_prepare.restype = I
    if hasattr(lib, "cait_emu_set_reverse_order"):
        lib.cait_emu_set_reverse_order.argtypes = [I]
        lib.cait_emu_set_reverse_order.restype = None
    return lib


def build_emulation() -> ctypes.CDLL:
    """libcait_emulated_kernels.so (CMake target), loaded with its signatures declared."""
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(
                f"{tool} is required for the kernel emulation (it is part of CI)"
            )
    EMU_BUILD.mkdir(parents=True, exist_ok=True)
    run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(EMU_BUILD),
            "-DCAIT_BUILD_EMULATION=ON",
            "-DCAIT_BUILD_PLUGINS=OFF",
            "-DCAIT_BUILD_SELFTEST=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ]
    )
    run(["cmake", "--build", str(EMU_BUILD), "--target", "cait_emulated_kernels", "-j", "2"])
    return declare(ctypes.CDLL(str(EMU_BUILD / "libcait_emulated_kernels.so")))


def plan(
    lib,
    batch,
    heads,
    tokens,
    head_size,
    *,
    fp16=True,
    smem,
    sm_count=132,
    sm_version=90,
    variant=AUTO,
    rows=0,
    workspace=0,
    splits=0,
):
    """(variant, rows, keys per chunk, shared memory bytes, threads, key splits, workspace bytes)
    of the launcher's plan, with `workspace` bytes of workspace offered."""
    out = np.zeros(7, np.int64)
    lib.cait_talking_heads_plan(
        batch,
        heads,
        tokens,
        head_size,
        int(fp16),
        smem,
        sm_count,
        sm_version,
        variant,
        rows,
        workspace,
        splits,
        out.ctypes.data_as(P),
    )
    return tuple(int(x) for x in out)
