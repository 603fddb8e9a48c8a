"""`build` on a machine without TensorRT: every CPU stage, then a ready script for the target.

(On a host with TensorRT the engine is built instead; tests/gpu covers that.)
"""

import importlib.util
import json
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed: build makes a real engine here",
)


# cait_xxs_24 at depth 2, fp16, 8 parity images: the build every test here starts from
XXS2_FP16 = ("build", "--model", "cait_xxs_24", "--depth", "2", "--fp16", "--images", "8")


@pytest.fixture(scope="module")
def fp16_build(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("build") / "fp16"
    r = run_cli(*XXS2_FP16, "--out", out)
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
    assert stages["fuse"]["talking_heads"] == 2
    assert stages["fuse"]["score_tensors"]["after"] == 0
    eng = [v for k, v in stages.items() if k.startswith("engine/")]
    assert eng and eng[0]["status"] == "skipped"


def _copy(fp16_build, tmp_path):
    """A private copy of the shared build: tests that re-run `build` must not change what the
    others read (the tests pass in any order)."""
    out = tmp_path / "fp16"
    shutil.copytree(fp16_build[0], out)
    return out


def test_require_engine_turns_the_skip_into_an_error(fp16_build, cli, tmp_path):
    out = _copy(fp16_build, tmp_path)
    r = cli(
        *XXS2_FP16,
        "--out",
        out,
        "--require-engine",
    )
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TensorRT" in errors[0] and "Traceback" not in r.stderr


def test_trt11_target_is_the_scripts_fallback(tmp_path, fp16_build, cli):
    out = _copy(fp16_build, tmp_path)
    r = cli(
        *XXS2_FP16,
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


def _calib_folder(tmp_path, kind):
    """Calibration folders a new user gets wrong: missing, empty, a file, only broken images."""
    folder = tmp_path / "calib"
    if kind == "empty":
        folder.mkdir()
    elif kind == "file":
        folder.write_text("not a folder")
    elif kind == "broken":
        folder.mkdir()
        for i in range(6):
            (folder / f"img{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg" + bytes(32))
    return folder


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--int8"], "--int8 needs --calib-data"),
        (["--fp8"], "FP8 needs compute capability >= 8.9"),  # --trt 10.3 (default): Orin
        (["--fp8", "--trt", "11.x"], "--fp8 needs --calib-data"),
        (["--batch", "8:1:32"], "min:opt:max"),
        (["--batch", "1:x:3"], "min:opt:max"),
        (["--trt", "9.0"], "TensorRT"),
        (["--images", "0"], "--images must be >= 1"),
        (["--weights", "/nonexistent.pdparams"], "weights file not found"),
        (["--plugins", "/nonexistent.so"], "no such file"),
        (["--int8", "--calib-data", "{missing}"], "does not exist"),
        (["--int8", "--calib-data", "{empty}"], "no images in"),
        (["--int8", "--calib-data", "{file}"], "is not a directory"),
        (["--int8", "--calib-data", "{broken}"], "cannot read the calibration images"),
        (
            ["--int8", "--calib-data", "{broken}", "--calib-images", "0"],
            "--calib-images must be >= 1",
        ),
        (
            ["--fp8", "--trt", "11.x", "--calib-data", "{broken}", "--calib-method", "entropy"],
            "does not apply to fp8",
        ),
    ],
)
def test_build_bad_input_fails_before_any_stage(tmp_path, cli, argv, needle):
    """One `error:` line, exit 2, no traceback, and nothing written: every input is checked before
    the first stage (export and fuse used to run ~15 s and leave model.onnx behind)."""
    kinds = ("missing", "empty", "file", "broken")
    argv = [str(_calib_folder(tmp_path, a[1:-1])) if a[1:-1] in kinds else a for a in argv]
    r = cli("build", "--model", "cait_xxs_24", "--depth", "1", *argv, "--out", tmp_path / "o")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and needle in errors[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "build [" not in r.stderr  # no stage started
    assert not (tmp_path / "o").exists()


def test_fp16_int8_fp8_each_get_a_check_and_an_engine_script(tmp_path, cli):
    """One build, three precisions: INT8 and FP8 share the calibration pass (FP8 hits the
    cache), the ladder runs FP8 on ONNX Runtime, and `check --trt 10.3` refuses the FP8 model."""
    from tests.support.synthetic import write_synthetic_imagenet

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
        "--fp8",
        "--trt",
        "11.x",
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
    for p in ("fp16", "int8", "fp8"):
        assert (out / f"model.{p}.build_engine.sh").exists()
    assert (r.stdout + r.stderr).count("engine: skipped (no TensorRT)") == 3
    assert "ok for 3 model(s)" in r.stdout
    assert "compute capability" not in (out / "model.int8.build_engine.sh").read_text()
    # the FP8 script stops on an older GPU (a stand-in nvidia-smi reports the capability)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text('#!/bin/sh\necho "$FAKE_CC"\n')
    (bin_dir / "nvidia-smi").chmod(0o755)
    for cc, rc in (("8.7", 2), ("9.0", 0)):
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_CC=cc)
        env.update(CAIT_PLUGINS="lib.so", DRY_RUN="1")
        r = subprocess.run(
            ["bash", str(out / "model.fp8.build_engine.sh"), "trtexec"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == rc and ("compute capability >= 8.9" in r.stderr) == (rc == 2)
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert stages["fp8"]["calibration"]["cache"] == "hit"  # INT8's pass served FP8 too
    fp8 = json.loads((out / "parity.json").read_text())["stages"]["fp8"]
    assert fp8["cosine_min"] > 0.99, fp8
    r = cli("check", out / "model.fp8.onnx", "--trt", "10.3")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "compute capability" in errors[0]
