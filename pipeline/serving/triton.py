"""Triton Inference Server: the `config.pbtxt` of each model in the repository, built as Triton's
own protobuf message (`tritonclient`'s `model_config_pb2`) and printed with protobuf's text format,
so that no field or enum name can be misspelt.

The repository (docs/serving.md):
    <name>/              ensemble: image bytes in, logits out (what clients call)
    <name>_preprocess/   Python backend: JPEG/PNG bytes → the project's preprocessing
    <name>_trt/          tensorrt_plan: the engine (or its ONNX and the script that builds it)
Every number in a config comes from a `ServedModel`, which the packaging stage fills from the
engine's manifest record (profile) and the ONNX (names, shapes, dtypes).
"""

from __future__ import annotations

import dataclasses

from pipeline.errors import UserError

LABELS = "labels.txt"
VERSION = "1"  # the one model version the repository holds
BYTES_INPUT = "image_bytes"  # the ensemble's and the preprocessing model's input
PREPROCESSED = "preprocessed_image"  # the ensemble's internal tensor between the two steps
# ONNX element type names (onnx.TensorProto) → Triton's data type names (model_config.proto).
_TRITON_TYPES = {"FLOAT": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16", "INT8": "INT8"}
QUEUE_DELAY_US = 100  # how long the dynamic batcher waits to fill a batch


def install_hint() -> str:
    return "pip install 'cait-trt-pipeline[triton]' (tritonclient with HTTP and gRPC)"


def model_config_pb2():
    """Triton's ModelConfig schema as shipped by `tritonclient` (UserError when absent)."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except ImportError:
        raise UserError(f"Triton support needs tritonclient: {install_hint()}") from None
    return pb2


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # Triton data type name without TYPE_: FP32, FP16, …
    dims: tuple[int, ...]  # without the batch axis

    @classmethod
    def from_onnx(cls, name: str, elem_type_name: str, dims) -> Tensor:
        if elem_type_name not in _TRITON_TYPES:
            raise UserError(
                f"tensor {name!r} has type {elem_type_name}, which Triton's "
                "TensorRT backend cannot take as a model input/output here"
            )
        return cls(name, _TRITON_TYPES[elem_type_name], tuple(int(d) for d in dims))


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """What the configs are derived from: names, I/O and the engine's optimization profile."""

    name: str
    input: Tensor  # the image tensor (C, S, S)
    output: Tensor  # the logits (classes,)
    batch: tuple[int, int, int]  # the engine profile's (min 1, opt, max ≥ 1; stages.serving)
    plan_file: str  # the engine's file name inside <name>_trt/1/
    instances: int = 1  # classifier instances per GPU

    def __post_init__(self):
        if self.instances < 1:
            raise UserError(f"--instances must be >= 1, got {self.instances}")

    @property
    def names(self) -> dict[str, str]:
        return model_names(self.name)


def model_names(name: str) -> dict[str, str]:
    """The three models of a repository named `name` (one rule, used by eval's default too)."""
    return {"ensemble": name, "classifier": f"{name}_trt", "preprocess": f"{name}_preprocess"}


def _io(pb2, kind, t: Tensor, labels: bool = False):
    msg = kind(name=t.name, data_type=pb2.DataType.Value(f"TYPE_{t.dtype}"), dims=list(t.dims))
    if labels:
        msg.label_filename = LABELS
    return msg


def classifier_config(m: ServedModel):
    """The tensorrt_plan model: profile max as max_batch_size, dynamic batching, CUDA graphs,
    warm-up at batch 1 and at the profile max, labels for the classification extension."""
    pb2 = model_config_pb2()
    bmin, bopt, bmax = m.batch
    cfg = pb2.ModelConfig(
        name=m.names["classifier"],
        platform="tensorrt_plan",
        max_batch_size=bmax,
        default_model_filename=m.plan_file,
        input=[_io(pb2, pb2.ModelInput, m.input)],
        output=[_io(pb2, pb2.ModelOutput, m.output, labels=True)],
        dynamic_batching=pb2.ModelDynamicBatching(
            preferred_batch_size=sorted({bopt, bmax}),
            max_queue_delay_microseconds=QUEUE_DELAY_US,
        ),
        # the engine has one optimization profile, "0" (pipeline/trt/build.py)
        instance_group=[
            pb2.ModelInstanceGroup(
                count=m.instances, kind=pb2.ModelInstanceGroup.KIND_GPU, profile=["0"]
            )
        ],
        optimization=pb2.ModelOptimizationPolicy(
            cuda=pb2.ModelOptimizationPolicy.Cuda(graphs=True)
        ),
    )
    for batch in sorted({1, bmax}):
        warm = cfg.model_warmup.add(name=f"random_batch_{batch}", batch_size=batch)
        warm.inputs[m.input.name].CopyFrom(
            pb2.ModelWarmup.Input(
                data_type=pb2.DataType.Value(f"TYPE_{m.input.dtype}"),
                dims=list(m.input.dims),
                random_data=True,
            )
        )
    return cfg


def preprocess_config(m: ServedModel, instances: int = 2):
    """The Python-backend model: encoded image bytes → the classifier's input tensor."""
    pb2 = model_config_pb2()
    return pb2.ModelConfig(
        name=m.names["preprocess"],
        backend="python",
        max_batch_size=m.batch[2],
        input=[_io(pb2, pb2.ModelInput, Tensor(BYTES_INPUT, "STRING", (1,)))],
        output=[_io(pb2, pb2.ModelOutput, m.input)],
        dynamic_batching=pb2.ModelDynamicBatching(max_queue_delay_microseconds=QUEUE_DELAY_US),
        instance_group=[
            pb2.ModelInstanceGroup(count=instances, kind=pb2.ModelInstanceGroup.KIND_CPU)
        ],
    )


def ensemble_config(m: ServedModel):
    """bytes → preprocess → classifier → logits, one request for the client."""
    pb2 = model_config_pb2()
    names = m.names
    step = pb2.ModelEnsembling.Step
    return pb2.ModelConfig(
        name=names["ensemble"],
        platform="ensemble",
        max_batch_size=m.batch[2],
        input=[_io(pb2, pb2.ModelInput, Tensor(BYTES_INPUT, "STRING", (1,)))],
        output=[_io(pb2, pb2.ModelOutput, m.output, labels=True)],
        ensemble_scheduling=pb2.ModelEnsembling(
            step=[
                step(
                    model_name=names["preprocess"],
                    model_version=-1,
                    input_map={BYTES_INPUT: BYTES_INPUT},
                    output_map={m.input.name: PREPROCESSED},
                ),
                step(
                    model_name=names["classifier"],
                    model_version=-1,
                    input_map={m.input.name: PREPROCESSED},
                    output_map={m.output.name: m.output.name},
                ),
            ]
        ),
    )


def config_text(cfg) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def parse_config(text: str):
    """Parse a config.pbtxt against Triton's schema (ParseError on an unknown field or enum)."""
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2().ModelConfig())


_LAUNCH = """#!/usr/bin/env bash
# Start Triton Inference Server on this model repository with CaiT's TensorRT plugins loaded
# (written by `python -m pipeline package triton`; docs/serving.md).
#   ./launch_triton.sh [tritonserver options…]        e.g. --http-port 8000 --grpc-port 8001
# Plugin library: $CAIT_PLUGINS, else {plugin_path} (a relative path is relative to this folder).
# An engine runs only on the TensorRT it was built with: build it with the TensorRT of the
# Triton release that serves it. Without {classifier}/1/{plan}, this script first runs
# {classifier}/1/{script} (BUILD_MODE=trtexec|python, default trtexec) to build it in place.
set -euo pipefail
cd "$(dirname "$0")"
PLUGINS="${{CAIT_PLUGINS:-{plugin_path}}}"
LIB=""
if [ -f "$PLUGINS" ]; then
  LIB="$(realpath "$PLUGINS")"
elif [ {needs_plugins} = 1 ]; then
  echo "error: {plan} has plugin nodes: put {plugin_name} at {plugin_path} in this folder or set CAIT_PLUGINS" >&2
  exit 2
fi
if [ ! -f "{classifier}/1/{plan}" ]; then
  CAIT_PLUGINS="$LIB" "./{classifier}/1/{script}" "${{BUILD_MODE:-trtexec}}"
fi
exec "${{TRITONSERVER:-tritonserver}}" --model-repository="$PWD" \
  ${{LIB:+"--backend-config=tensorrt,plugins=$LIB"}} "$@"
"""


def launch_script(m: ServedModel, *, build_script: str, plugin_path: str, needs_plugins: bool):
    """`launch_triton.sh`: tritonserver with `--backend-config=tensorrt,plugins=…`."""
    return _LAUNCH.format(
        plugin_path=plugin_path,
        plugin_name=plugin_path.rsplit("/", 1)[-1],
        classifier=m.names["classifier"],
        plan=m.plan_file,
        script=build_script,
        needs_plugins=int(needs_plugins),
    )
