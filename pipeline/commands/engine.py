"""`engine`: build a TensorRT engine from an ONNX model (on the machine that will run it)."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError

HELP = "build a TensorRT engine from an ONNX model (strongly typed; precision from the ONNX)"


def parse_batch(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in str(text).split(":"))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise UserError(f"--batch {text!r}: write min:opt:max with 1 ≤ min ≤ opt ≤ max, "
                        "e.g. 1:8:32")
    return parts


def add_arguments(p):
    p.add_argument("onnx", help="ONNX model (model.fp16.onnx, model.int8.onnx, …)")
    p.add_argument("-o", "--output", required=True, help="engine file to write")
    p.add_argument("--plugins", help="plugin library (libcait_trt_plugins.so), loaded once")
    p.add_argument("--batch", default="1:8:32", help="optimization profile min:opt:max on the "
                   "batch axis (default 1:8:32)")
    p.add_argument("--workspace", default="2G", help="workspace memory pool limit (default 2G)")
    p.add_argument("--opt-level", type=int, default=3, choices=range(0, 6), metavar="0-5",
                   help="builder optimization level (default 3)")
    p.add_argument("--timing-cache", help="timing cache file, loaded if present and saved after")


def run(args) -> int:
    from pipeline.artifacts import record_stage
    from pipeline.trt.build import build_engine
    from pipeline.trt.stage import stage_key

    batch = parse_batch(args.batch)
    out = Path(args.output)
    record = build_engine(args.onnx, out, plugins=args.plugins, batch=batch,
                          workspace=args.workspace, opt_level=args.opt_level,
                          timing_cache=args.timing_cache)
    record_stage(out.parent, stage_key(out), record)
    print(f"engine: {out} (TensorRT {record['tensorrt']}, {record['gpu']} "
          f"sm_{str(record['compute_capability']).replace('.', '')}, {record['seconds']} s)")
    return 0
