"""`engine`: build a TensorRT engine from an ONNX model (on the machine that will run it)."""

from __future__ import annotations

from pathlib import Path

from pipeline.commands.common import parse_batch

HELP = "build a TensorRT engine from an ONNX model (strongly typed; precision from the ONNX)"


def add_arguments(p):
    p.add_argument("onnx", help="ONNX model (model.fp16.onnx, model.int8.onnx, …)")
    p.add_argument("-o", "--output", required=True, help="engine file to write")
    p.add_argument("--plugins", help="plugin library (libcait_trt_plugins.so), loaded once")
    p.add_argument(
        "--batch",
        default="1:8:32",
        help="optimization profile min:opt:max on the batch axis (default 1:8:32)",
    )
    p.add_argument("--workspace", default="2G", help="workspace memory pool limit (default 2G)")
    p.add_argument(
        "--opt-level",
        type=int,
        default=3,
        choices=range(0, 6),
        metavar="0-5",
        help="builder optimization level (default 3)",
    )
    p.add_argument("--timing-cache", help="timing cache file, loaded if present and saved after")


def run(args) -> int:
    from pipeline.artifacts import record_stage
    from pipeline.trt.build import build_engine
    from pipeline.trt.stage import stage_key

    batch = parse_batch(args.batch)
    out = Path(args.output)
    record = build_engine(
        args.onnx,
        out,
        plugins=args.plugins,
        batch=batch,
        workspace=args.workspace,
        opt_level=args.opt_level,
        timing_cache=args.timing_cache,
    )
    record_stage(out.parent, stage_key(out), record)
    print(
        f"engine: {out} (TensorRT {record['tensorrt']}, {record['gpu']} "
        f"sm_{str(record['compute_capability']).replace('.', '')}, {record['seconds']} s)"
    )
    return 0
