"""Test helpers for the serving side: artifact folders with engine records, Triton's schema,
and a live Triton server (PyTriton's bundled tritonserver hosting the CPU runtime)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import onnx
import pytest

from pipeline.artifacts import engine_path, onnx_hash, record_stage
from pipeline.stages.engine import stage_key

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "scripts" / "triton_cpu_server.py"
# `make test` makes this venv (scripts/triton_cpu_server.requirements.txt); CAIT_TRITON_PYTHON
# points at another interpreter that has PyTriton.
SERVER_PYTHON = Path(os.environ.get("CAIT_TRITON_PYTHON", ROOT / ".venv-triton" / "bin" / "python"))
START_TIMEOUT_S, STOP_TIMEOUT_S = 120, 30


def artifact_folder(root: Path, model: onnx.ModelProto, name: str = "model.fp16.onnx") -> Path:
    """A folder holding one ONNX stage, as `build` leaves it."""
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / name))
    return root / name


def built_engine_record(onnx_path: Path, batch, input_name=None, shape=None) -> Path:
    """The record the engine stage writes after a build on a GPU host, and a file at the
    engine's path. Packaging reads the record and copies the file; it never opens the engine,
    so its bytes here are a placeholder, not a TensorRT stand-in."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    inp = model.graph.input[0]
    dims = [d.dim_value or -1 for d in inp.type.tensor_type.shape.dim]
    engine = engine_path(onnx_path, onnx_path.parent)
    engine.write_bytes(b"placeholder: packaging copies this file and never reads it")
    record_stage(
        onnx_path.parent,
        stage_key(engine),
        {
            "status": "built",
            "engine": engine.name,
            "onnx": str(onnx_path),
            "inputs": {"onnx": onnx_hash(onnx_path)},
            "tensorrt": "10.3.0",
            "gpu": "Orin",
            "compute_capability": "8.7",
            "input": {"name": input_name or inp.name, "shape": shape or dims},
            "settings": {"batch": list(batch)},
        },
    )
    return engine


def parse_pbtxt(path: Path):
    """Triton's own schema: tritonclient's model_config_pb2 + protobuf's text format."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())


def cpu_classifier(repo: Path, name: str, onnx_path: Path) -> None:
    """Make `<name>_trt` a Python-backend model running `onnx_path` (PyTriton's server has no
    TensorRT backend). Its I/O, max_batch_size, batching and labels stay as generated."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    folder = repo / f"{name}_trt"
    cfg = parse_pbtxt(folder / "config.pbtxt")
    for field in ("platform", "default_model_filename", "optimization", "model_warmup"):
        cfg.ClearField(field)
    cfg.backend = "python"
    del cfg.instance_group[:]
    cfg.instance_group.add(count=1, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    cfg.parameters["onnx"].string_value = str(onnx_path)
    cfg.parameters["pipeline_root"].string_value = str(ROOT)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(cfg))
    shutil.copyfile(
        ROOT / "tests" / "support" / "triton_cpu_classifier.py", folder / "1" / "model.py"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def triton_cpu_server(log: Path, *args):
    """Start `scripts/triton_cpu_server.py ARGS…` on 127.0.0.1, yield (http_url, grpc_url), stop it.

    Skips when the server's venv is absent (pytest run outside `make test`); fails with the
    server's log when it exits or stays unready past START_TIMEOUT_S."""
    if not SERVER_PYTHON.exists():
        pytest.skip(f"no PyTriton interpreter at {SERVER_PYTHON}: `make test` creates .venv-triton")
    http, grpc = free_port(), free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(SERVER_PYTHON), str(SERVER), *map(str, args)]
            + ["--http-port", str(http), "--grpc-port", str(grpc)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: tritonserver and the stubs stop with it
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "serving " not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Triton server did not start; log tail:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{http}", f"127.0.0.1:{grpc}"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group (stubs, proxies)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
