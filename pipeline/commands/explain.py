"""`explain`: class-attention maps of images (each head of the last class-attention layer), from
the deployed ONNX model and checked against the Paddle reference: PNG overlays and raw .npy."""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import EXPORTED, FUSED, ensure_writable_dir
from pipeline.commands.common import add_model_args, dirs_from_args, preset_from_args
from pipeline.data.preprocess import load_image
from pipeline.errors import UserError
from pipeline.stages.explain import explain
from pipeline.weights import checkpoint_path


def add_arguments(p):
    p.add_argument("images", nargs="+", help="image files")
    add_model_args(
        p,
        out_help="artifact directory holding the model (default: engines/<model>/fp32, …)",
    )
    p.add_argument(
        "--onnx",
        help="the deployed model to read the maps from (fp32 or fp16 ONNX; default: "
        "model.fused.onnx, else model.onnx, in the artifact directory)",
    )
    p.add_argument("--maps", help="where to write the maps (default: <artifact directory>/explain)")
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the Paddle reference (by default it computes the same maps and the largest "
        "difference is printed and recorded)",
    )


def _model(args, preset) -> Path:
    if args.onnx:
        if not Path(args.onnx).is_file():
            raise UserError(f"--onnx {args.onnx}: no such file")
        return Path(args.onnx)
    dirs = dirs_from_args(args, preset, "fp32")
    for d in dirs:
        for name in (FUSED, EXPORTED):
            if (d / name).is_file():
                return d / name
    raise UserError(
        f"no model.fused.onnx or model.onnx for {preset.name} in "
        f"{', '.join(map(str, dirs))}: run build/export first, or pass --onnx or --out"
    )


def run(args) -> int:
    preset = preset_from_args(args)
    if args.weights:
        checkpoint_path(args.weights)
    images = [Path(p) for p in args.images]
    for p in images:  # every image readable before any model loads
        load_image(p)
    onnx_path = _model(args, preset)
    out = ensure_writable_dir(Path(args.maps) if args.maps else onnx_path.parent / "explain")
    rec = explain(
        images,
        out,
        onnx_path=onnx_path,
        preset=preset,
        weights=args.weights,
        reference=not args.no_reference,
    )
    agree = (
        f"; Paddle agrees within {rec['paddle_max_abs']:.1e}"
        if "paddle_max_abs" in rec.data
        else ""
    )
    print(
        f"explain: {len(images)} image(s), {rec['heads']} heads over {rec['tokens']} tokens, "
        f"from {onnx_path}{agree}"
    )
    for name in rec.outputs:
        print(f"  {out / name}")
    print(f"  {out / 'manifest.json'}")
    return 0
