"""GPU suite: needs TensorRT (with its builder), cuda-python, a CUDA GPU and the plugin library.

Run by scripts/gpu_selftest.sh after it builds the plugins (`pytest tests/gpu`); elsewhere every
test here skips with the reason. Nothing is mocked: these tests exist to touch real TensorRT.
"""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def plugin_library() -> Path:
    return Path(os.environ.get("CAIT_PLUGINS", ROOT / "build" / "libcait_trt_plugins.so"))


def gpu_skip_reason() -> str | None:
    from pipeline.trt import env

    if env.tensorrt_module() is None:
        return "TensorRT Python package not installed (pip install 'tensorrt>=10.3')"
    if not env.has_builder():
        return "only the TensorRT lean runtime is installed: the suite builds engines"
    try:
        import cuda.bindings.runtime  # noqa: F401
    except ImportError:
        return "cuda-python not installed (pip install 'cuda-python>=12.6')"
    if env.gpu_info() is None:
        return "no CUDA GPU visible"
    if not plugin_library().is_file():
        return (
            f"plugin library {plugin_library()} not built (scripts/gpu_selftest.sh builds it;"
            " or set CAIT_PLUGINS)"
        )
    return None


def pytest_collection_modifyitems(config, items):
    reason = gpu_skip_reason()
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.gpu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def trtexec():
    exe = shutil.which("trtexec") or os.environ.get("TRTEXEC")
    if not exe:
        pytest.skip("trtexec not on PATH (it ships in TensorRT's bin/; set TRTEXEC)")
    return exe
