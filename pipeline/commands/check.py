"""`check`: will TensorRT's ONNX parser of a given release accept this model? (no TensorRT needed)"""

from __future__ import annotations

from pipeline.errors import UserError
from pipeline.trt.check import check_onnx, parser_table
from pipeline.trt.versions import DEFAULT_TARGET, TARGETS, normalize_target


def add_arguments(p):
    p.add_argument("onnx", help="ONNX model to check")
    p.add_argument(
        "--trt",
        default=DEFAULT_TARGET,
        help=f"target TensorRT: {', '.join(TARGETS)} "
        f"(or a full version such as 10.3.0.30; default {DEFAULT_TARGET})",
    )


def run(args) -> int:

    target = normalize_target(args.trt)
    problems = check_onnx(args.onnx, trt=target)
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise UserError(
            f"{args.onnx}: {len(errors)} problem(s) for TensorRT {target} (listed above)"
        )
    print(
        f"check: {args.onnx} is compatible with TensorRT {target} "
        f"({len(problems)} warning(s); source: {parser_table(target)['source'].split(' @')[0]})"
    )
    return 0
