"""`fuse`: fold scale and LayerScale γ, fuse CaiT attention (plugin nodes or the ONNX fast path)."""

from __future__ import annotations

from pipeline.stages.fuse import fuse


def add_arguments(p):
    p.add_argument("input", metavar="IN.onnx", help="ONNX model (paddle2onnx or timm export)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="fused model")
    p.add_argument(
        "--report", metavar="R.json", help="fusion report (JSON, plus a markdown twin R.md)"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check with ONNX Runtime against the unfused model (|Δlogit| ≤ 1e-4, batch 1 and 3)",
    )
    p.add_argument(
        "--attention",
        default="plugin",
        metavar="MODE",
        help="plugin: TensorRT plugin nodes (default); onnx: plugin-free fast path; per op: "
        "th=plugin,ca=onnx (th: talking heads, ca: class attention); auto: plugin nodes where "
        "the plugin can run them",
    )
    p.add_argument(
        "--expect-blocks",
        type=int,
        default=None,
        metavar="L",
        help="talking-heads blocks the model must have (default: the preset in the "
        "manifest beside IN, else a structural count)",
    )
    p.add_argument("--force", action="store_true", help="re-run even if inputs are unchanged")


def run(args) -> int:
    fuse(
        args.input,
        args.output,
        attention=args.attention,
        verify=args.verify,
        report=args.report,
        expect_blocks=args.expect_blocks,
        force=args.force,
    )
    return 0
