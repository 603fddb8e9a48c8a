"""What is installed on this machine: TensorRT version, GPU name and compute capability.

All probes are lazy and return None when TensorRT / CUDA are absent, so callers can decide
between "skip" and "error" (issue 5: `build` without TensorRT).
"""

from __future__ import annotations

import functools
import importlib.util


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
def gpu_info(device: int = 0) -> dict | None:
    """{"name", "compute_capability": "8.7"} of CUDA device `device`, or None without a GPU.

    Uses cuda-python (`cuda.bindings.runtime`), what NVIDIA's samples use since 10.13 (design §3).
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return None
    err, props = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:  # no driver, no device
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"name": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}


def trt_version() -> str | None:
    trt = tensorrt_module()
    return getattr(trt, "__version__", None) if trt else None


@functools.cache
def trt_logger():
    """One TensorRT logger per process, shared with Polygraphy's loaders (TensorRT keeps the first
    logger registered, so builder, parser and runtime should all get the same one)."""
    from polygraphy.backend.trt import util as trt_util

    return trt_util.get_trt_logger()
