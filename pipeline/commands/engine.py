"""`engine`: build a TensorRT engine from an ONNX model (on the machine that will run it)."""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import record_stage
from pipeline.commands.common import add_engine_args, engine_settings
from pipeline.stages.engine import stage_key
from pipeline.trt.build import build_engine


def add_arguments(p):
    p.add_argument("onnx", help="ONNX model (model.fp16.onnx, model.int8.onnx, …)")
    p.add_argument("-o", "--output", required=True, help="engine file to write")
    p.add_argument("--plugins", help="plugin library (libcait_trt_plugins.so), loaded once")
    add_engine_args(p)


def run(args) -> int:
    settings = engine_settings(args)
    out = Path(args.output)
    record = build_engine(args.onnx, out, plugins=args.plugins, settings=settings)
    record_stage(out.parent, stage_key(out), record)
    print(
        f"engine: {out} (TensorRT {record['tensorrt']}, {record['gpu']} "
        f"sm_{str(record['compute_capability']).replace('.', '')}, {record['seconds']} s)"
    )
    return 0
