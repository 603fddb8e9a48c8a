"""`package triton|deepstream` and `eval --backend triton` from the command line: a summary of
what was written where, and one `error:` line (exit 2) for each bad input."""

from __future__ import annotations

import pytest

from tests.support.graphs import tiny_classifier
from tests.support.serving import artifact_folder, built_engine_record, parse_pbtxt

pytest.importorskip("tritonclient.grpc", reason="tritonclient is in the test extra")


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


@pytest.fixture
def art(tmp_path):
    return artifact_folder(tmp_path / "art", tiny_classifier()).parent


def test_package_triton_summary(cli, art):
    built_engine_record(art / "model.fp16.onnx", (1, 4, 12))
    r = cli("package", "triton", "--model", "cait_xxs_24", "--out", art, "--name", "cait")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "max_batch_size 12" in r.stdout and "engine model.fp16.engine" in r.stdout
    assert parse_pbtxt(art / "triton" / "cait_trt" / "config.pbtxt").max_batch_size == 12


def test_package_bad_inputs(cli, art, tmp_path):
    base = ["package", "triton", "--model", "cait_xxs_24", "--out", art]
    assert "no model.int8.onnx" in _one_error_line(cli(*base, "--stage", "int8"))
    assert "--batch" in _one_error_line(cli(*base, "--batch", "8:4:1"))
    built_engine_record(art / "model.fp16.onnx", (1, 1, 0))
    assert "max batch 0" in _one_error_line(cli(*base))
    assert "max batch 0" in _one_error_line(cli("package", "deepstream", *base[2:]))
    built_engine_record(art / "model.fp16.onnx", (1, 8, 32), input_name="pixels")
    assert "does not match the ONNX" in _one_error_line(cli(*base))
    assert not (art / "triton").exists()  # nothing half-written
    msg = _one_error_line(cli("package", "deepstream", *base[2:], "--data", tmp_path / "none"))
    assert "does not exist" in msg


def test_eval_triton_bad_urls(cli, art, tmp_path):
    base = ["eval", "--model", "cait_xxs_24", "--out", art, "--data", tmp_path]
    assert "give both or neither" in _one_error_line(cli(*base, "--backend", "triton"))
    assert "HOST:PORT" in _one_error_line(cli(*base, "--backend", "triton", "--url", "localhost"))
