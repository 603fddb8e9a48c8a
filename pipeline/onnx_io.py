"""Reading ONNX models and running them with ONNX Runtime: one way for every stage.

`load_onnx` turns an unreadable, truncated or invalid file into one clear UserError (every stage
reads artifacts a user may have copied or edited). `image_input` reads the one image input every
CaiT model has. `ort_session` is the single place that builds an ONNX Runtime session, optionally
on a copy of the model that also returns intermediate tensors (fuse verification, calibration
statistics, parity bisecting).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

CPU = ("CPUExecutionProvider",)
# Above this many elements an initializer is a weight, not shape arithmetic: the skeleton used
# for shape inference and the TensorRT checker keep only its type and dims.
LARGE_ELEMENTS = 4096


def numel(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


def is_large(tensor) -> bool:
    return numel(tensor) > LARGE_ELEMENTS


@dataclass(frozen=True)
class ImageInput:
    """The image input of a classifier: (batch, channels, size, size)."""

    name: str
    channels: int
    size: int
    batch: int | None  # a static batch, or None when the axis is dynamic


def batched_input(model) -> tuple[str, tuple[int, ...]]:
    """Name and per-item shape of the model's single input (static but for the batch axis)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"expected one input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim[1:]
    if not dims or any(not d.HasField("dim_value") for d in dims):
        raise UserError(f"input {inputs[0].name} needs static non-batch dims")
    return inputs[0].name, tuple(d.dim_value for d in dims)


def image_input(model) -> ImageInput:
    """The single input, shaped (B, C, S, S) with static C and S, or UserError."""
    name, per_item = batched_input(model)
    if len(per_item) != 3 or per_item[1] != per_item[2]:
        raise UserError(f"input {name!r} is not an image batch (B, C, S, S)")
    dim0 = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim[0]
    batch = dim0.dim_value if dim0.HasField("dim_value") else None
    return ImageInput(name, per_item[0], per_item[1], batch)


def load_onnx(path: str | os.PathLike):
    """Read an ONNX model (external data included) or raise one clear UserError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: no such file")
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


def ort_session(model_or_path, *, extra_outputs=(), threads: int | None = None, providers=CPU):
    """ONNX Runtime session for a path or ModelProto; `extra_outputs` are added as graph
    outputs on a copy (the caller's model is not modified). `threads`: intra-op threads (None:
    ONNX Runtime's default, one per core)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    providers = list(providers)
    if isinstance(model_or_path, (str, os.PathLike)) and not extra_outputs:
        return ort.InferenceSession(str(model_or_path), so, providers=providers)
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
    return ort.InferenceSession(model.SerializeToString(), so, providers=providers)
