"""The Triton repository: every config.pbtxt parses with Triton's schema and agrees with the
engine's profile and the ONNX's I/O; the preprocessing model carries the one preprocessing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from PIL import Image

from pipeline.data import imagenet, load_image, preprocess
from pipeline.errors import UserError
from pipeline.serving.triton import model_config_pb2
from pipeline.stages.engine import engine_stage
from pipeline.stages.triton import triton_repository
from pipeline.trt.settings import EngineSettings
from tests.support.graphs import tiny_classifier
from tests.support.serving import artifact_folder, built_engine_record, parse_pbtxt

pytest.importorskip("tritonclient.grpc", reason="tritonclient is in the test extra")


def _configs(repo):
    return {p.parent.name: parse_pbtxt(p) for p in sorted(repo.glob("*/config.pbtxt"))}


def test_configs_parse_and_follow_the_engine_profile(tmp_path):
    """No engine here: the engine stage records its profile and leaves the build script; the
    repository's max_batch_size follows that record when the profile changes."""
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier(size=32))
    seen = {}
    for batch in ((1, 4, 16), (1, 2, 8)):
        engine_stage(onnx_path, onnx_path.parent, settings=EngineSettings(batch=batch))
        repo = tmp_path / f"repo{batch[2]}"
        triton_repository(onnx_path, repo, name="tiny")
        cfg = _configs(repo)
        assert set(cfg) == {"tiny", "tiny_preprocess", "tiny_trt"}
        assert {c.max_batch_size for c in cfg.values()} == {batch[2]}
        seen[batch[2]] = cfg
    pb2 = model_config_pb2()
    trt = seen[8]["tiny_trt"]
    assert trt.platform == "tensorrt_plan" and trt.default_model_filename == "model.fp16.engine"
    assert [(i.name, i.data_type, list(i.dims)) for i in trt.input] == [
        ("input", pb2.TYPE_FP32, [3, 32, 32])
    ]
    assert trt.output[0].label_filename == "labels.txt" and list(trt.output[0].dims) == [1000]
    assert list(trt.dynamic_batching.preferred_batch_size) == [2, 8]
    assert (
        trt.optimization.cuda.graphs
        and trt.instance_group[0].kind == trt.instance_group[0].KIND_GPU
    )
    assert sorted(w.batch_size for w in trt.model_warmup) == [1, 8]
    ens = seen[8]["tiny"]
    assert [s.model_name for s in ens.ensemble_scheduling.step] == ["tiny_preprocess", "tiny_trt"]
    assert seen[8]["tiny_preprocess"].backend == "python"
    repo = tmp_path / "repo8"
    labels = (repo / "tiny_trt" / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[1] == imagenet.class_name(1) == labels[1].strip()
    # no engine yet: the ONNX and the script that builds the plan in place
    version = repo / "tiny_trt" / "1"
    assert (version / "model.fp16.onnx").exists() and (
        version / "model.fp16.build_engine.sh"
    ).exists()
    assert (repo / "manifest.json").exists()


def test_launch_script_loads_the_plugins_from_a_relative_path(tmp_path):
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier())
    repo = tmp_path / "repo"
    triton_repository(onnx_path, repo, name="tiny")
    text = (repo / "launch_triton.sh").read_text()
    assert "--backend-config=tensorrt,plugins=$LIB" in text
    assert "CAIT_PLUGINS:-libcait_trt_plugins.so" in text and str(tmp_path) not in text
    assert os.access(repo / "launch_triton.sh", os.X_OK)
    dry = subprocess.run(
        ["bash", str(repo / "launch_triton.sh"), "--http-port", "1"],
        env={**os.environ, "TRITONSERVER": "echo", "BUILD_MODE": "trtexec", "DRY_RUN": "1"},
        capture_output=True,
        text=True,
    )
    # a plugin-free model: no plugin flag; the missing plan's build line runs first (dry)
    assert dry.returncode == 0, dry.stderr
    assert "trtexec" in dry.stdout and f"--model-repository={repo}" in dry.stdout
    assert "--backend-config" not in dry.stdout


def test_fp16_io_is_declared_fp16(tmp_path):
    model = tiny_classifier()
    for vi in (model.graph.input[0], model.graph.output[0]):  # only the I/O types are read
        vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    onnx_path = artifact_folder(tmp_path / "art", model)
    triton_repository(onnx_path, tmp_path / "repo", name="t")
    cfg = _configs(tmp_path / "repo")
    pb2 = model_config_pb2()
    assert cfg["t_trt"].input[0].data_type == pb2.TYPE_FP16
    assert cfg["t_trt"].output[0].data_type == pb2.TYPE_FP16
    assert cfg["t_preprocess"].output[0].data_type == pb2.TYPE_FP16  # it casts for the plan


@pytest.mark.parametrize(
    "batch, name, shape, message",
    [
        ((1, 1, 0), None, None, "max batch 0"),
        ((2, 4, 8), None, None, "starts at batch 2"),
        ((1, 4, 8), "images", None, "does not match the ONNX"),
        ((1, 4, 8), None, [-1, 3, 64, 64], "does not match the ONNX"),
    ],
)
def test_engine_records_that_cannot_be_served_are_refused(tmp_path, batch, name, shape, message):
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier())
    built_engine_record(onnx_path, batch, input_name=name, shape=shape)
    with pytest.raises(UserError, match=message):
        triton_repository(onnx_path, tmp_path / "repo", name="t")
    assert not (tmp_path / "repo").exists()  # nothing half-written


def test_a_built_engine_goes_into_the_repository(tmp_path):
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier())
    engine = built_engine_record(onnx_path, (1, 8, 32))
    rec = triton_repository(onnx_path, tmp_path / "repo", name="t")
    assert (tmp_path / "repo" / "t_trt" / "1" / engine.name).read_bytes() == engine.read_bytes()
    assert rec["max_batch_size"] == 32 and rec["engine_record"]["gpu"] == "Orin"
    with pytest.raises(UserError, match="was built with --batch 1:8:32"):
        triton_repository(onnx_path, tmp_path / "repo2", name="t", batch=(1, 4, 8))


def test_preprocessing_model_reproduces_the_shared_preprocessing(tmp_path):
    """The vendored module, imported alone from the repository, gives bit-identical tensors."""
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier(size=32))
    triton_repository(onnx_path, tmp_path / "repo", name="t")
    version = tmp_path / "repo" / "t_preprocess" / "1"
    img = tmp_path / "x.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(img, quality=90)
    code = (
        "import io, sys, numpy as np, pipeline; from pipeline.data.preprocess import load_image, "
        "preprocess; assert pipeline.__file__.startswith(sys.argv[1]), pipeline.__file__; "
        "np.save(sys.argv[3], preprocess(load_image(io.BytesIO(open(sys.argv[2], 'rb').read())), 32))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(version), str(img), str(tmp_path / "x.npy")],
        env={**os.environ, "PYTHONPATH": str(version)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), preprocess(load_image(img), 32))
    compile((version / "model.py").read_text(), "model.py", "exec")


def test_the_repository_serves_on_a_real_triton(tmp_path):
    """PyTriton's tritonserver loads the generated repository — the preprocessing model, the
    ensemble, the labels — with `<name>_trt` turned into a Python-backend model running the same
    ONNX on the CPU (that server has no TensorRT backend). JPEG bytes in, the ensemble's logits
    equal the local preprocessing + ONNX Runtime, and `class_count` names the classes."""
    import tritonclient.http as http

    from pipeline.runners.ort import OrtRunner
    from tests.support.serving import cpu_classifier, triton_cpu_server

    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier(size=32))
    repo = tmp_path / "repo"
    triton_repository(onnx_path, repo, name="tiny")
    cpu_classifier(repo, "tiny", onnx_path)
    images = []
    for i, colour in enumerate([(250, 10, 10), (10, 10, 250), (120, 200, 40)]):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40 + 9 * i, 30), colour).save(p, quality=92)
        images.append(p)
    with triton_cpu_server(tmp_path / "server.log", "--repository", repo) as (url, _):
        client = http.InferenceServerClient(url)
        for _ in range(120):  # the server is up; its models load in the background
            if client.is_model_ready("tiny"):
                break
            time.sleep(0.5)
        blobs = np.array([[p.read_bytes()] for p in images], dtype=np.object_)
        inp = http.InferInput("image_bytes", list(blobs.shape), "BYTES")
        inp.set_data_from_numpy(blobs)
        logits = client.infer("tiny", [inp]).as_numpy("logits")
        top = client.infer(
            "tiny", [inp], outputs=[http.InferRequestedOutput("logits", class_count=1)]
        ).as_numpy("logits")
    local = OrtRunner(onnx_path).run(np.stack([preprocess(load_image(p), 32) for p in images]))
    np.testing.assert_allclose(logits, local, rtol=0, atol=1e-5)
    names = [t[0].decode().split(":", 2) for t in top]  # "score:index:label"
    assert [int(n[1]) for n in names[:2]] == [1, 2]  # red → class 1, blue → class 2
    assert names[0][2] == imagenet.class_name(1) and names[1][2] == imagenet.class_name(2)
