"""The shell/Python scripts of the TensorRT side: syntax, usage errors, missing-artifact notes."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = ROOT / "scripts"


@pytest.mark.parametrize("name", ["jetson_build.sh", "profile_engine.sh"])
def test_shell_syntax(name):
    r = subprocess.run(["bash", "-n", str(SCRIPTS / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_profile_engine_usage():
    r = subprocess.run(["bash", str(SCRIPTS / "profile_engine.sh")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_jetson_build_refuses_missing_onnx(tmp_path):
    r = subprocess.run(
        ["bash", str(SCRIPTS / "jetson_build.sh"), str(tmp_path / "no.onnx")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not found" in r.stderr


def test_bench_runtime_skips_missing_models_with_a_note(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "bench_runtime.py"),
            "--root",
            str(tmp_path),
            "--engines",
            "ort-fp32-fast",
            "ort-int8",
            "paddle-inference",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for engine in ("ort-fp32-fast", "ort-int8", "paddle-inference"):
        assert f"note: {engine}: skipped" in r.stdout
