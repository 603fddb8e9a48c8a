"""`build` on a machine without TensorRT: every CPU stage, then a ready script for the target.

By default (`--attention auto`) the script builds every candidate engine (plugin or plain ONNX
per fused op), times them like for like and keeps the fastest through `python -m pipeline
choose`; the manifest explains the choice. (On a host with TensorRT the engines are built and
timed here instead; tests/gpu covers that.)
"""

import importlib.util
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from pipeline.cli import main

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
    assert (
        f"engine: skipped (no TensorRT) — run {script} on the target: it builds and times "
        "the candidates (plugin, ca, th, plugin-free) and keeps the fastest as "
        "model.fp16.engine"
    ) in text
    assert text.count("engine: skipped") == 1
    for name in ("ca", "th", "plugin-free"):
        assert (out / "candidates" / f"model.fp16.{name}.onnx").exists()
    for name in ("model.onnx", "model.fused.onnx", "model.fp16.onnx", "parity.md", "manifest.json"):
        assert (out / name).exists(), name
        assert str(out / name) in r.stdout  # the closing summary names what was written where
    assert (out / "parity.json").exists() and (out / "parity.png").exists()
    assert not list(out.glob("*.engine"))


def _dry_run(script, trt_version, plugins="/opt/libcait_trt_plugins.so"):
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "TRT_VERSION": trt_version}
    if plugins:
        env["CAIT_PLUGINS"] = plugins
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines(), r.stderr


LIKE_FOR_LIKE_10 = ("--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--separateProfileRun")


@pytest.mark.parametrize("trt_version", ["10.3.0.30", "11.1.0"])
def test_script_builds_and_times_every_candidate_like_for_like(fp16_build, trt_version):
    out, _ = fp16_build
    lines, _ = _dry_run(out / "model.fp16.build_engine.sh", trt_version)
    builds = [line for line in lines if "--saveEngine=" in line]
    benches = [line for line in lines if "--loadEngine=" in line]
    assert len(builds) == len(benches) == 4
    ten = trt_version.startswith("10.")
    for name, build, bench in zip(("plugin", "ca", "th", "plugin-free"), builds, benches):
        engine = f"candidates/model.fp16.{name}.engine"
        assert f"--saveEngine={engine}" in build and f"--loadEngine={engine}" in bench
        assert (
            "--minShapes=image:1x3x224x224" in build and "--maxShapes=image:32x3x224x224" in build
        )
        assert ("--stronglyTyped" in build) == ten
        assert "--shapes=image:8x3x224x224" in bench  # the profile's opt batch
        assert f"--exportTimes=candidates/model.fp16.{name}.times.json" in bench
        assert all((flag in bench) == ten for flag in LIKE_FOR_LIKE_10)  # 11.x: the defaults
        assert ("--staticPlugins=/opt/libcait_trt_plugins.so" in build) == (name != "plugin-free")
        for weak in (" --fp16", " --int8", " --best"):
            assert weak not in build
    assert "--onnx=model.fp16.onnx " in builds[0]  # all-plugin: the fp16 model itself
    assert lines[-1] == (
        f"python3 -m pipeline choose model.fp16.engine --trt {trt_version} "
        "--plugins /opt/libcait_trt_plugins.so"
    )
    # --trt (default 10.3) is what the script assumes when it cannot ask the target
    assert "|| echo 10.3)" in (out / "model.fp16.build_engine.sh").read_text()


def test_without_the_plugin_library_only_plugin_free_competes(fp16_build):
    out, _ = fp16_build
    lines, err = _dry_run(out / "model.fp16.build_engine.sh", "10.3", plugins=None)
    assert [
        line.split("--saveEngine=")[1].split()[0] for line in lines if "--saveEngine" in line
    ] == ["candidates/model.fp16.plugin-free.engine"]
    assert err.count("skipped: it needs the plugin library") == 3


def test_manifest_explains_the_pending_choice(fp16_build):
    out, _ = fp16_build
    rec = json.loads((out / "manifest.json").read_text())["stages"]["attention/model.fp16.engine"]
    assert rec["status"] == "pending" and rec["reason"] == "no TensorRT"
    assert "must beat it by more than 3%" in rec["rule"] and rec["opt_batch"] == 8
    assert rec["script"] == str(out / "model.fp16.build_engine.sh")
    got = {c["name"]: c["plugin_ops"] for c in rec["candidates"]}
    assert got == {
        "plugin": ["CaitClassAttention", "CaitTalkingHeadsAttention"],
        "ca": ["CaitClassAttention"],
        "th": ["CaitTalkingHeadsAttention"],
        "plugin-free": [],
    }


def _record_timings(out, medians):
    """What the target script leaves: each candidate's engine and trtexec --exportTimes JSON
    (31 iterations spread ±1 % around the candidate's median)."""
    for name, ms in medians.items():
        (out / "candidates" / f"model.fp16.{name}.engine").write_bytes(name.encode())
        times = [
            {"startEnqMs": float(i), "computeMs": float(ms * (1 + d)), "latencyMs": ms}
            for i, d in enumerate(np.linspace(-0.01, 0.01, 31))
        ]
        (out / "candidates" / f"model.fp16.{name}.times.json").write_text(json.dumps(times))


@pytest.mark.parametrize(
    "medians,winner",
    [
        ({"plugin": 1.20, "ca": 1.45, "th": 1.25, "plugin-free": 1.50}, "plugin"),
        ({"plugin": 1.90, "ca": 1.46, "th": 2.10, "plugin-free": 1.50}, "plugin-free"),  # ca: 2.7 %
        (
            {"plugin": 1.00, "ca": 1.30, "th": 1.01, "plugin-free": 1.50},
            "th",
        ),  # tie → fewer plugins
        ({"plugin-free": 1.50}, "plugin-free"),  # no plugin library on the target
    ],
)
def test_choose_keeps_the_rules_winner_and_records_every_timing(
    fp16_build, tmp_path, cli, medians, winner
):
    out = _copy(fp16_build, tmp_path)
    _record_timings(out, medians)
    r = cli("choose", out / "model.fp16.engine", "--trt", "10.3.0.30")
    assert r.returncode == 0, r.stderr
    assert (out / "model.fp16.engine").read_bytes() == winner.encode()
    assert f"attention: kept {winner}" in r.stdout
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    rec = stages["attention/model.fp16.engine"]
    assert rec["status"] == "chosen" and rec["choice"]["winner"] == winner
    timed = {row["candidate"]: row["median_ms"] for row in rec["choice"]["candidates"]}
    assert timed.keys() == medians.keys()
    assert all(abs(timed[n] - m) <= 1e-4 for n, m in medians.items())
    assert sorted(rec["not_built"]) == sorted({"plugin", "ca", "th", "plugin-free"} - set(medians))
    engine = stages["engine/model.fp16.engine"]
    assert engine["status"] == "built" and engine["attention"] == winner
    assert engine["tensorrt"] == "10.3.0.30" and engine["builder"] == "trtexec"


def test_choose_before_the_script_ran_is_one_error_line(fp16_build, tmp_path, cli):
    out = _copy(fp16_build, tmp_path)
    r = cli("choose", out / "model.fp16.engine")
    assert (
        r.returncode == 2 and r.stderr.startswith("error:") and "run the target script" in r.stderr
    )


def test_manifest_records_every_stage(fp16_build):
    out, _ = fp16_build
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert {"export", "fuse", "fp16", "parity", "variants/model.fp16.onnx"} <= set(stages)
    assert stages["fuse"]["talking_heads"] == 2
    assert stages["fuse"]["score_tensors"]["after"] == 0
    variants = stages["variants/model.fp16.onnx"]["candidates"]
    assert set(variants) == {"ca", "th", "plugin-free"}
    assert variants["plugin-free"]["max_abs_vs_plugin_model"] <= 1e-2
    assert all(v["lowered_nodes"] > 0 for v in variants.values())


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
    lines, _ = _dry_run(out / "model.fp16.build_engine.sh", "10.3.0")
    assert all("--stronglyTyped" in line for line in lines if "--saveEngine" in line)


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
        (["--attention", "th=fast"], "--attention 'th=fast': write auto, plugin, onnx"),
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
def test_build_bad_input_fails_before_any_stage(tmp_path, capfd, argv, needle):
    """One `error:` line, exit 2, no traceback, and nothing written: every input is checked before
    the first stage (export and fuse used to run ~15 s and leave model.onnx behind). In-process
    (the CLI's main, as `python -m pipeline` runs it): a subprocess per case would cost seconds."""
    kinds = ("missing", "empty", "file", "broken")
    argv = [str(_calib_folder(tmp_path, a[1:-1])) if a[1:-1] in kinds else a for a in argv]
    code = main(
        ["build", "--model", "cait_xxs_24", "--depth", "1", *argv, "--out", str(tmp_path / "o")]
    )
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and needle in errors[0], err[-2000:]
    assert "Traceback" not in err and "build [" not in err  # no stage started
    assert not (tmp_path / "o").exists()


def test_bad_input_through_python_m_pipeline(tmp_path, cli):
    r = cli("build", "--model", "cait_xxs_24", "--int8", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith("error: --int8 needs --calib-data")
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_fp16_int8_fp8_each_get_a_check_and_an_engine_script(tmp_path, cli):
    """One build, three precisions: INT8 and FP8 share the calibration pass (FP8 hits the
    cache), the ladder runs FP8 on ONNX Runtime, every precision gets its attention candidates
    and its target script, and `check --trt 10.3` refuses the FP8 model."""
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
    assert "ok for 12 model(s)" in r.stdout  # 4 attention candidates of each precision
    assert (out / "candidates" / "model.int8.plugin-free.onnx").exists()
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
