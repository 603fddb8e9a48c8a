"""`quantize`: fp32 ONNX → model.int8.onnx or model.fp8.onnx (explicit Q/DQ, rest fp16),
calibrated on a folder."""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import EXPORTED, FUSED
from pipeline.commands.common import (
    add_calibration_args,
    add_model_args,
    calibration_kwargs,
    dirs_from_args,
    preset_from_args,
)
from pipeline.errors import UserError
from pipeline.stages.quantize import FORMATS, quantize


def add_arguments(p):
    add_model_args(
        p,
        out_help="artifact directory holding model.fused.onnx or model.onnx "
        "(default: engines/<model>/int8, else …/fp32)",
    )
    p.add_argument(
        "--src",
        help="fp32 ONNX to quantize (default: model.fused.onnx if present, "
        "else model.onnx, in the artifact directory)",
    )
    add_calibration_args(p)
    p.add_argument("--labels", help="PaddleClas-style label list for a flat folder")
    p.add_argument(
        "--precision",
        choices=list(FORMATS),
        default="int8",
        help="int8 (default) or fp8 (E4M3: TensorRT on compute capability >= 8.9)",
    )
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument(
        "--parity-images",
        type=int,
        default=256,
        help="images set aside for the parity ladder (never calibrated on)",
    )
    p.add_argument("--fp16-io", action="store_true", help="fp16 graph inputs/outputs")
    p.add_argument(
        "--rest",
        choices=["fp16", "fp32"],
        default="fp16",
        help="dtype of everything not quantized: fp16 for TensorRT (default), fp32 "
        "for ONNX Runtime on the CPU",
    )


def run(args) -> int:
    if not args.calib_data:
        raise UserError("--calib-data DIR is required: a folder of images to calibrate on")
    preset = preset_from_args(args)
    if args.src:
        src = Path(args.src)
        out = Path(args.out) if args.out else src.parent
    else:
        src = None
        for d in dirs_from_args(args, preset, args.precision):
            for name in (FUSED, EXPORTED):
                if (d / name).exists():
                    src, out = d / name, d
                    break
            if src:
                break
        if src is None:
            raise UserError(
                f"no model.fused.onnx or model.onnx for {preset.name} in "
                f"{', '.join(map(str, dirs_from_args(args, preset, args.precision)))}: run "
                "export/fuse first or pass --src"
            )
    dst = out / FORMATS[args.precision].artifact
    rec = quantize(
        src,
        dst,
        precision=args.precision,
        labels=args.labels,
        percentile=args.percentile,
        parity_images=args.parity_images,
        rest=args.rest,
        **calibration_kwargs(args),
    )
    c = rec["calibration"]
    print(
        f"{args.precision}: {dst} — {rec['quantized_nodes']} nodes quantized, "
        f"{rec['settings']['method']} over {c['images_used']} images (cache {c['cache']})"
    )
    return 0
