"""The engine stage where TensorRT is missing: artifacts, script and exit codes.

These tests describe this CPU machine; where TensorRT and a GPU are installed the stage builds
instead, so they skip there (the GPU suite covers that path).
"""

import json
import os
import shutil
import subprocess

import onnx
import pytest

from pipeline.errors import UserError
from pipeline.stages.engine import engine_stage
from pipeline.trt import env
from pipeline.trt.settings import EngineSettings
from tests.support.graphs import talking_heads_model

pytestmark = pytest.mark.skipif(
    env.has_builder() and env.gpu_info() is not None,
    reason="TensorRT and a GPU are here: the stage builds instead",
)


def test_skipped_record_script_and_message(classifier_path, tmp_path, capsys):
    out = tmp_path / "art"
    rec = engine_stage(
        classifier_path,
        out,
        settings=EngineSettings(batch=(1, 4, 16), workspace="1G", opt_level=4, target="10.3"),
    )
    script = out / "model.build_engine.sh"
    assert rec["status"] == "skipped" and rec["script"] == str(script)
    assert rec["engine"] == "model.engine" and len(rec["inputs"]["onnx"]) == 64
    assert rec["settings"]["batch"] == [1, 4, 16]
    assert not (out / "model.engine").exists()
    assert os.access(script, os.X_OK)
    printed = capsys.readouterr().out
    assert f"engine: skipped (no TensorRT) — run {script} on the target" in printed
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["engine/model.engine"]["status"] == "skipped"


def _dry(script, *args, **env_extra):
    e = dict(os.environ, DRY_RUN="1", **env_extra)
    r = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=e)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_script_picks_trtexec_flags_by_version(classifier_path, tmp_path):
    rec = engine_stage(classifier_path, tmp_path / "art")
    ten = _dry(rec["script"], "trtexec", TRT_VERSION="10.3.0.30")
    eleven = _dry(rec["script"], "trtexec", TRT_VERSION="11.1.0.106")
    assert "--stronglyTyped" in ten and "--stronglyTyped" not in eleven
    for line in (ten, eleven):
        assert "--onnx=../model.onnx" in line and "--saveEngine=model.engine" in line
        assert "--minShapes=input:1x3x32x32" in line and "--maxShapes=input:32x3x32x32" in line
        assert not {"--fp16", "--int8", "--best"} & set(line.split())
    py = _dry(rec["script"], "python")
    assert "-m pipeline engine ../model.onnx -o model.engine --batch 1:8:32" in py


def test_plugin_model_script_needs_plugins(tmp_path):
    p = tmp_path / "model.fused.onnx"
    onnx.save(talking_heads_model(), str(p))
    rec = engine_stage(p, tmp_path, settings=EngineSettings(batch=(1, 1, 1)))
    script = tmp_path / "model.fused.build_engine.sh"
    r = subprocess.run(
        ["bash", str(script), "trtexec"],
        capture_output=True,
        text=True,
        env=dict(os.environ, DRY_RUN="1"),
    )
    assert r.returncode != 0 and "CAIT_PLUGINS" in r.stderr
    line = _dry(script, "trtexec", CAIT_PLUGINS="/opt/libcait_trt_plugins.so", TRT_VERSION="10.3")
    assert "--staticPlugins=/opt/libcait_trt_plugins.so" in line
    assert rec["status"] == "skipped"


def test_require_engine_is_an_error(classifier_path, tmp_path):
    with pytest.raises(UserError, match="--require-engine"):
        engine_stage(classifier_path, tmp_path / "art", require_engine=True)
    # the script is still there for the target
    assert (tmp_path / "art" / "model.build_engine.sh").exists()


def test_engine_command_without_tensorrt(cli, classifier_path, tmp_path):
    r = cli("engine", classifier_path, "-o", tmp_path / "m.engine")
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "TensorRT" in r.stderr
    assert not (tmp_path / "m.engine").exists()


def test_engine_command_rejects_bad_batch(cli, classifier_path, tmp_path):
    r = cli("engine", classifier_path, "-o", tmp_path / "m.engine", "--batch", "8:1:32")
    assert r.returncode == 2 and "min:opt:max" in r.stderr


def test_script_never_bakes_in_the_build_hosts_plugin_path(tmp_path):
    """The folder is copied to the target: the script takes $CAIT_PLUGINS or the library beside
    it, never an absolute path of the machine that wrote it."""
    host_lib = tmp_path / "host" / "build" / "libcait_trt_plugins.so"
    host_lib.parent.mkdir(parents=True)
    host_lib.write_bytes(b"\x7fELF")
    art = tmp_path / "art"
    art.mkdir()
    p = art / "model.fused.onnx"
    onnx.save(talking_heads_model(), str(p))
    rec = engine_stage(p, art, plugins=str(host_lib))
    text = (art / "model.fused.build_engine.sh").read_text()
    assert str(tmp_path) not in text and rec["status"] == "skipped"
    target = tmp_path / "target"  # the folder as copied to the target
    shutil.copytree(art, target)
    script = target / "model.fused.build_engine.sh"
    r = subprocess.run(
        ["bash", str(script), "trtexec"],
        capture_output=True,
        text=True,
        env=dict(os.environ, DRY_RUN="1", TRT_VERSION="10.3"),
    )
    assert r.returncode == 2 and r.stderr.startswith("error:") and "CAIT_PLUGINS" in r.stderr
    (target / "libcait_trt_plugins.so").write_bytes(b"\x7fELF")
    line = _dry(script, "trtexec", TRT_VERSION="10.3")
    assert f"--staticPlugins={target}/libcait_trt_plugins.so" in line
