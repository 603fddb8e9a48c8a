"""`build` on a machine without TensorRT: every CPU stage, then a ready script for the target.

(On a host with TensorRT the engine is built instead; tests/gpu covers that.)
"""

import importlib.util
import json

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed: build makes a real engine here",
)


@pytest.fixture(scope="module")
def fp16_build(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("build") / "fp16"
    r = run_cli(
        "build", "--model", "cait_xxs_24", "--depth", "2", "--fp16", "--images", "8", "--out", out
    )
    return out, r


def test_fp16_build_without_tensorrt_exits_0_with_skip_line(fp16_build):
    out, r = fp16_build
    assert r.returncode == 0, r.stderr[-3000:]
    text = r.stdout + r.stderr
    script = out / "model.fp16.build_engine.sh"
    assert f"engine: skipped (no TensorRT) — run {script} on the target" in text
    assert text.count("engine: skipped") == 1
    for name in ("model.onnx", "model.fused.onnx", "model.fp16.onnx", "parity.md", "manifest.json"):
        assert (out / name).exists(), name
        assert str(out / name) in r.stdout  # the closing summary names what was written where
    assert (out / "parity.json").exists() and (out / "parity.png").exists()
    assert not list(out.glob("*.engine"))


def _trtexec_lines(sh):
    """(11.x line, 10.x line) of the script's version switch."""
    lines = [line for line in sh.splitlines() if "run trtexec" in line]
    assert len(lines) == 2
    return lines[0], lines[1]


def test_script_names_the_right_flags_for_10x_and_11x(fp16_build):
    out, _ = fp16_build
    sh = (out / "model.fp16.build_engine.sh").read_text()
    line11, line10 = _trtexec_lines(sh)
    assert "--stronglyTyped" in line10 and "--stronglyTyped" not in line11
    for line in (line10, line11):
        assert "--onnx=model.fp16.onnx" in line
        assert "--minShapes=image:1x3x224x224" in line and "--maxShapes=image:32x3x224x224" in line
        for weak in (" --fp16", " --int8", " --best"):
            assert weak not in line
    assert "python3 -m pipeline engine model.fp16.onnx" in sh
    # --trt (default 10.3) is what the script assumes when it cannot ask the target
    assert "|| echo 10.3)" in sh


def test_manifest_records_every_stage(fp16_build):
    out, _ = fp16_build
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert {"export", "fuse", "fp16", "parity"} <= set(stages)
    assert stages["fuse"]["figures"]["talking_heads"] == 2
    assert stages["fuse"]["figures"]["score_tensors"]["after"] == 0
    eng = [v for k, v in stages.items() if k.startswith("engine/")]
    assert eng and eng[0]["status"] == "skipped"


def test_require_engine_turns_the_skip_into_an_error(fp16_build, cli):
    out, _ = fp16_build
    r = cli(
        "build",
        "--model",
        "cait_xxs_24",
        "--depth",
        "2",
        "--fp16",
        "--images",
        "8",
        "--out",
        out,
        "--require-engine",
    )
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TensorRT" in errors[0] and "Traceback" not in r.stderr


def test_trt11_target_is_the_scripts_fallback(tmp_path, fp16_build, cli):
    out, _ = fp16_build
    r = cli(
        "build",
        "--model",
        "cait_xxs_24",
        "--depth",
        "2",
        "--fp16",
        "--images",
        "8",
        "--out",
        out,
        "--trt",
        "11.x",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    sh = (out / "model.fp16.build_engine.sh").read_text()
    assert "|| echo 11.x)" in sh
    import subprocess

    dry = subprocess.run(
        ["bash", str(out / "model.fp16.build_engine.sh"), "trtexec"],
        env={
            "PATH": "/usr/bin:/bin",
            "DRY_RUN": "1",
            "CAIT_PLUGINS": "/x.so",
            "TRT_VERSION": "10.3.0",
        },
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0 and "--stronglyTyped" in dry.stdout, dry.stderr


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--int8"], "--int8 needs --calib-data"),
        (["--batch", "8:1:32"], "min:opt:max"),
        (["--batch", "1:x:3"], "min:opt:max"),
        (["--trt", "9.0"], "TensorRT"),
    ],
)
def test_build_bad_input(tmp_path, cli, argv, needle):
    r = cli("build", "--model", "cait_xxs_24", "--depth", "1", *argv, "--out", tmp_path / "o")
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_fp16_and_int8_both_get_a_check_and_an_engine_script(tmp_path, cli):
    from pipeline.data.synthetic import write_synthetic_imagenet

    write_synthetic_imagenet(tmp_path / "jpegs", 24, size=64, layout="flat", seed=0)
    out = tmp_path / "both"
    r = cli(
        "build",
        "--model",
        "cait_xxs_24",
        "--depth",
        "1",
        "--fp16",
        "--int8",
        "--calib-data",
        tmp_path / "jpegs",
        "--calib-images",
        8,
        "--calib-method",
        "max",
        "--images",
        4,
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for p in ("fp16", "int8"):
        assert (out / f"model.{p}.build_engine.sh").exists()
    assert (r.stdout + r.stderr).count("engine: skipped (no TensorRT)") == 2
    assert "ok for 2 model(s)" in r.stdout
