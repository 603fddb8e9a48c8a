"""Fixtures of the plugin tests: one CMake build of the kernel emulation per session."""

import shutil
from pathlib import Path

import pytest

from . import emulation

ROOT = emulation.ROOT
_run = emulation.run


@pytest.fixture(scope="session")
def emulated_kernels():
    """ctypes handle of libcait_emulated_kernels.so: the shipped .cu sources built for the host."""
    try:
        return emulation.build_emulation()
    except FileNotFoundError as e:
        pytest.fail(str(e))


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
