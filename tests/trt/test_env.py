"""What the TensorRT side asks of the machine: cuda-python pinned per CUDA driver, and engine
builds that need TensorRT and a driver but not cuda-python."""

import subprocess
import sys

import pytest

from pipeline.trt.env import cuda_python_mismatch
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "bindings,driver,ok",
    [
        ("12.6.2", (12, 6), True),  # JetPack 6
        ("12.9.0", (12, 6), True),  # a newer 12.x still runs on a 12.6 driver (same major)
        ("13.0.1", (12, 6), False),  # what an unbounded pin installs on JetPack 6
        ("13.0.1", (13, 0), True),
        ("12.8.0", (13, 0), True),  # older bindings on a newer driver: fine
    ],
)
def test_cuda_python_must_not_be_newer_than_the_driver(bindings, driver, ok):
    why = cuda_python_mismatch(bindings, driver)
    assert (why is None) == ok
    if not ok:
        assert "CUDA 13 driver" in why and "12.6" in why
        assert "cuda-python>=12.6,<13" in why and "[cu12]" in why


def test_extras_pin_cuda_python_per_driver_major():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["cu12"] == ["cuda-python>=12.6,<13"]
    assert extras["cu13"] == ["cuda-python>=13,<14"]
    assert not any("cuda-python" in d for d in extras["trt"])  # building needs no cuda-python


def test_engine_stage_and_builder_do_not_import_cuda_python():
    code = (
        "import sys; sys.modules['cuda'] = None\n"  # any `import cuda…` would fail
        "from pipeline.stages.engine import can_build_here\n"
        "from pipeline.trt import build, env\n"
        "print(can_build_here(), env.gpu_info() is None or 'name' in env.gpu_info())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "True"
