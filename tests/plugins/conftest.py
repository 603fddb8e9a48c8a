"""Fixtures of the plugin tests: one CMake build of the kernel emulation per session."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMU_BUILD = ROOT / "build" / "plugins-emulation"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def emulated_kernels():
    """ctypes handle of libcait_emulated_kernels.so: the shipped .cu sources built for the host.

    The build directory persists under build/ so that reruns are incremental.
    """
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required for the kernel emulation tests (it is part of CI)")
    EMU_BUILD.mkdir(parents=True, exist_ok=True)
    _run(
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
    _run(["cmake", "--build", str(EMU_BUILD), "--target", "cait_emulated_kernels", "-j", "2"])
    lib = ctypes.CDLL(str(EMU_BUILD / "libcait_emulated_kernels.so"))
    P, I, F, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_longlong  # noqa: E741
    lib.cait_emu_talking_heads.argtypes = [I, I, I, I, I, F, P, P, P, P, P, P, L, I]
    lib.cait_emu_talking_heads.restype = I
    lib.cait_emu_talking_heads_rows.argtypes = [I, I, I, L]
    lib.cait_emu_talking_heads_rows.restype = I
    lib.cait_emu_talking_heads_plan.argtypes = [I, I, I, L, I, P]
    lib.cait_emu_talking_heads_plan.restype = None
    lib.cait_emu_class_attention.argtypes = [I, I, I, I, I, F, P, P, P, P, L]
    lib.cait_emu_class_attention.restype = I
    return lib


def find_tensorrt_include():
    """NvInfer.h's folder: $TENSORRT_INCLUDE_DIR, $TENSORRT_ROOT/include, a pip `tensorrt`'s
    include/, or the system folders of the Debian packages. None when absent."""
    import importlib.util
    import os

    candidates = []
    if os.environ.get("TENSORRT_INCLUDE_DIR"):
        candidates.append(Path(os.environ["TENSORRT_INCLUDE_DIR"]))
    if os.environ.get("TENSORRT_ROOT"):
        candidates.append(Path(os.environ["TENSORRT_ROOT"]) / "include")
    for mod in ("tensorrt", "tensorrt_libs", "tensorrt_bindings"):
        try:
            spec = importlib.util.find_spec(mod)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            candidates.append(Path(spec.origin).parent / "include")
    candidates += [
        Path("/usr/include/x86_64-linux-gnu"),
        Path("/usr/include/aarch64-linux-gnu"),
        Path("/usr/include"),
        Path("/usr/local/TensorRT/include"),
    ]
    for c in candidates:
        if (c / "NvInferRuntime.h").is_file():
            return c
    return None


def find_cuda_include():
    import os

    for c in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        if c and (Path(c) / "include" / "cuda_fp16.h").is_file():
            return Path(c) / "include"
    nvcc = shutil.which("nvcc")
    if nvcc and (Path(nvcc).resolve().parents[1] / "include" / "cuda_fp16.h").is_file():
        return Path(nvcc).resolve().parents[1] / "include"
    return None
