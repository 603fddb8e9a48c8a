"""Build and load the C ABI of the kernels (plugins/capi/kernelsCApi.cpp) for the host emulation.

The build directory persists under build/ so that reruns are incremental.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

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
    import numpy as np

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
