"""`check`: will TensorRT's ONNX parser of a given release accept this model? (no TensorRT needed)"""

from __future__ import annotations

from pipeline.errors import UserError
from pipeline.trt.check import check_onnx, parser_table
from pipeline.trt.versions import DEFAULT_TARGET, TARGETS, compute_tuple, normalize_target


def add_arguments(p):
    p.add_argument("onnx", help="ONNX model to check")
    p.add_argument(
        "--trt",
        default=DEFAULT_TARGET,
        help=f"target TensorRT: {', '.join(TARGETS)} "
        f"(or a full version such as 10.3.0.30; default {DEFAULT_TARGET})",
    )
    p.add_argument(
        "--compute",
        help="compute capability of the target GPU, e.g. 8.7 (Orin), 8.6 (A10), 8.9 (L4), "
        "9.0 (H100): an FP8 model needs >= 8.9 (default: what --trt implies, else unchecked)",
    )


def run(args) -> int:

    target = normalize_target(args.trt)
    if args.compute:
        compute_tuple(args.compute)  # a malformed value is bad input, before any work
    problems = check_onnx(args.onnx, trt=target, compute=args.compute)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    if len(errors) == 1:  # the error line says it too, so stderr alone tells what is wrong
        raise UserError(f"{args.onnx} will not run on TensorRT {target}: {errors[0].message}")
    if errors:
        raise UserError(
            f"{args.onnx}: {len(errors)} problem(s) for TensorRT {target} (listed above)"
        )
    print(
        f"check: {args.onnx} is compatible with TensorRT {target} "
        f"({len(problems)} warning(s); source: {parser_table(target)['source'].split(' @')[0]})"
    )
    return 0
