"""The TensorRT backend's manifest guard (pure Python): manifests written by the test."""

import pytest

from pipeline.artifacts import record_stage
from pipeline.errors import UserError
from pipeline.trt.guard import check_engine_record, find_engine_record

LIB_HASH = "a" * 64
HERE = dict(
    trt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7", plugin_sha256=LIB_HASH
)


@pytest.fixture
def engine(tmp_path):
    e = tmp_path / "model.fp16.engine"
    e.write_bytes(b"not a real engine: the guard never opens it")
    record_stage(
        tmp_path,
        "engine/model.fp16.engine",
        {
            "status": "built",
            "engine": e.name,
            "onnx": "model.fp16.onnx",
            "script": str(tmp_path / "model.fp16.build_engine.sh"),
            "tensorrt": "10.3.0.30",
            "gpu": "Orin",
            "compute_capability": "8.7",
            "plugin_library": {"path": "/opt/libcait_trt_plugins.so", "sha256": LIB_HASH},
        },
    )
    return e


def test_matching_record_passes(engine):
    rec = find_engine_record(engine)
    assert rec["onnx"] == "model.fp16.onnx"
    check_engine_record(engine, rec, **HERE)  # no exception


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("trt_version", "10.16.1.11", ["TensorRT 10.3.0.30", "here 10.16.1.11"]),
        ("trt_version", "11.1.0.106", ["TensorRT 10.3.0.30"]),
        ("gpu_name", "NVIDIA H100 80GB HBM3", ["GPU Orin", "H100"]),
        ("compute_capability", "9.0", ["sm_87", "sm_90"]),
        ("plugin_sha256", "b" * 64, ["plugin library sha256 aaaaaaaaaaaa"]),
        ("plugin_sha256", None, ["none loaded", "--plugins"]),
    ],
)
def test_mismatch_is_refused_with_rebuild_hint(engine, field, value, words):
    with pytest.raises(UserError) as e:
        check_engine_record(engine, find_engine_record(engine), **{**HERE, field: value})
    msg = str(e.value)
    assert "rebuild the engine on this machine" in msg and "model.fp16.build_engine.sh" in msg
    for w in words:
        assert w in msg


def test_engine_without_record_is_refused(tmp_path):
    e = tmp_path / "other.engine"
    e.write_bytes(b"x")
    assert find_engine_record(e) is None
    with pytest.raises(UserError, match="--skip-manifest-check"):
        check_engine_record(e, None, **HERE)


def test_skipped_record_does_not_count(tmp_path):
    e = tmp_path / "model.engine"
    record_stage(tmp_path, "engine", {"status": "skipped", "engine": "model.engine"})
    assert find_engine_record(e) is None


def test_engine_built_without_plugins_runs_with_or_without_them(engine):
    rec = {**find_engine_record(engine), "plugin_library": None}
    check_engine_record(engine, rec, **{**HERE, "plugin_sha256": None})
    check_engine_record(engine, rec, **HERE)
