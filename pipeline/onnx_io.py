"""Reading ONNX models and running them on the CPU: one way for every stage.

`load_onnx` turns an unreadable, truncated or invalid file into one clear UserError (every stage
reads artifacts a user may have copied or edited). `cpu_session` is the single place that builds
an ONNX Runtime CPU session, optionally on a copy of the model that also returns intermediate
tensors (fuse verification, calibration statistics, parity bisecting).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UserError


def load_onnx(path: str | os.PathLike):
    """Read an ONNX model (external data included) or raise one clear UserError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as e:  # protobuf DecodeError, missing external data, …
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path} is not a readable ONNX model ({reason}); re-export it or pass the right file"
        ) from None
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise UserError(
            f"{path} is not a readable ONNX model (empty or truncated graph); "
            "re-export it or pass the right file"
        )
    try:
        onnx.checker.check_model(str(path))  # by path: works past 2 GB and with external data
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path} is not a valid ONNX model ({first})") from None
    return model


def cpu_session(model_or_path, *, extra_outputs=(), threads: int | None = None):
    """ONNX Runtime CPU session for a path or ModelProto; `extra_outputs` are added as graph
    outputs on a copy (the caller's model is not modified)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    if isinstance(model_or_path, (str, os.PathLike)) and not extra_outputs:
        return ort.InferenceSession(str(model_or_path), so, providers=["CPUExecutionProvider"])
    model = (
        onnx.load(str(model_or_path))
        if isinstance(model_or_path, (str, os.PathLike))
        else model_or_path
    )
    if extra_outputs:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        have = {o.name for o in copy.graph.output}
        copy.graph.output.extend(
            onnx.ValueInfoProto(name=n) for n in dict.fromkeys(extra_outputs) if n not in have
        )
        model = copy
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
