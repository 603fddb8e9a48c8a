"""What is installed on this machine: TensorRT, the CUDA driver, the GPU, cuda-python.

All probes are lazy and return None when TensorRT / CUDA are absent, so callers can decide
between "skip" and "error" (`build` without TensorRT writes a script instead).

The GPU and the driver are asked through the CUDA driver library itself (ctypes, as Polygraphy
does for its CUDA wrapper), so building an engine needs TensorRT and a driver but not
cuda-python. Only the TensorRT runner needs cuda-python, and `cuda_runtime()` refuses a
cuda-python newer than the driver: cuda-python 13.x needs a CUDA 13 driver, and on JetPack 6
(CUDA 12.6) pip would otherwise install it and fail only at the first stream creation.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util

from pipeline.errors import UserError

# CUdevice_attribute values in cuda.h (stable since CUDA 2.x)
_CC_MAJOR, _CC_MINOR = 75, 76
# The pip extra that pins cuda-python to each driver major version (pyproject.toml).
CUDA_PYTHON_EXTRA = {12: "cu12", 13: "cu13"}


def tensorrt_module():
    """The `tensorrt` module, or None when it is not importable (or is only the lean runtime)."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt as trt
    except Exception:  # broken install: libnvinfer missing
        return None
    return trt


def has_builder() -> bool:
    trt = tensorrt_module()
    return trt is not None and hasattr(trt, "Builder") and hasattr(trt, "OnnxParser")


@functools.cache
def _driver():
    """libcuda (the driver API), initialised; None without a driver or a device."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        return lib if lib.cuInit(0) == 0 else None
    return None


@functools.cache
def gpu_info(device: int = 0) -> dict | None:
    """{"name", "compute_capability": "8.7"} of CUDA device `device`, or None without a GPU."""
    cuda = _driver()
    if cuda is None:
        return None
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    if (
        cuda.cuDeviceGet(ctypes.byref(dev), device) != 0
        or cuda.cuDeviceGetName(name, len(name), dev) != 0
        or cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev) != 0
        or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev) != 0
    ):
        return None
    return {
        "name": name.value.decode(errors="replace"),
        "compute_capability": f"{major.value}.{minor.value}",
    }


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA the installed driver supports, e.g. (12, 6); None without a driver."""
    cuda = _driver()
    v = ctypes.c_int()
    if cuda is None or cuda.cuDriverGetVersion(ctypes.byref(v)) != 0:
        return None
    return v.value // 1000, v.value % 1000 // 10


def cuda_python_version() -> str | None:
    for dist in ("cuda-bindings", "cuda-python"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cuda_python_mismatch(bindings: str, driver: tuple[int, int]) -> str | None:
    """Why cuda-python `bindings` (a version string) cannot run on a driver for CUDA `driver`,
    with the install line that fixes it; None when it can."""
    major = int(bindings.split(".")[0])
    if major <= driver[0]:
        return None
    extra = CUDA_PYTHON_EXTRA.get(driver[0])
    fix = f"pip install 'cuda-python>={driver[0]}.{driver[1]},<{driver[0] + 1}'" + (
        f" (the [{extra}] extra of this package)" if extra else ""
    )
    return (
        f"cuda-python {bindings} needs a CUDA {major} driver, but this machine's driver "
        f"supports CUDA {driver[0]}.{driver[1]} (JetPack 6 ships CUDA 12.6): {fix}"
    )


def cuda_runtime():
    """`cuda.bindings.runtime`, after checking that this cuda-python fits the driver."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise UserError(
            "the TensorRT runner needs cuda-python: pip install the [cu12] extra "
            "(CUDA 12 drivers, JetPack 6) or the [cu13] extra (CUDA 13 drivers)"
        ) from None
    version, driver = cuda_python_version(), driver_cuda_version()
    why = cuda_python_mismatch(version, driver) if version and driver else None
    if why:
        raise UserError(why)
    return cudart


def trt_version() -> str | None:
    trt = tensorrt_module()
    return getattr(trt, "__version__", None) if trt else None


@functools.cache
def trt_logger():
    """One TensorRT logger per process, shared with Polygraphy's loaders (TensorRT keeps the first
    logger registered, so builder, parser and runtime should all get the same one)."""
    from polygraphy.backend.trt import util as trt_util

    return trt_util.get_trt_logger()
