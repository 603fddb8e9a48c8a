"""`build`: the whole pipeline for one preset — export → fuse (+verify) → precision → parity →
compatibility check → engine (or, without TensorRT, a ready script for the target)."""

from __future__ import annotations

import logging
import time

from pipeline.commands.common import (
    add_model_args,
    out_dir_from_args,
    parse_batch,
    preset_from_args,
)
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = (
    "build a preset end to end: export, fuse, FP16/INT8, parity ladder, TensorRT engine "
    "(or the script that builds it on the target)"
)


def add_arguments(p):
    add_model_args(p, out_help="artifact directory (default: engines/<model>/<fp32|fp16|int8>)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13–20 (default 17)")
    p.add_argument(
        "--attention",
        choices=["plugin", "onnx"],
        default="plugin",
        help="fused attention as TensorRT plugin nodes (default) or plain ONNX "
        "(plugin-free fast path)",
    )
    g = p.add_argument_group("precision")
    g.add_argument("--fp16", action="store_true", help="write model.fp16.onnx (mixed precision)")
    g.add_argument("--fp16-io", action="store_true", help="fp16 graph inputs/outputs")
    g.add_argument("--int8", action="store_true", help="write model.int8.onnx (explicit Q/DQ)")
    g.add_argument("--calib-data", help="image folder for INT8 calibration (and parity images)")
    g.add_argument("--calib-images", type=int, default=512)
    g.add_argument("--calib-method", choices=["entropy", "percentile", "max"], default="entropy")
    g.add_argument("--calib-seed", type=int, default=0)
    g = p.add_argument_group("parity")
    g.add_argument(
        "--data",
        help="labelled images for the parity ladder (default: --calib-data "
        "if given, else synthetic images: agreement only)",
    )
    g.add_argument(
        "--images",
        type=int,
        default=8,
        help="parity images (default 8: a quick check that keeps build --fp16 of "
        "cait_s_36_384 under 2 minutes on 2 cores; `parity --images 256` is the "
        "thorough ladder)",
    )
    g = p.add_argument_group("engine")
    g.add_argument(
        "--trt",
        default="10.3",
        help="TensorRT target for the compatibility check "
        "and the engine script: 10.3 (Jetson floor), 10.16 or 11.x",
    )
    g.add_argument("--plugins", help="libcait_trt_plugins.so to load when building the engine")
    g.add_argument("--batch", default="1:8:32", help="optimization profile min:opt:max")
    g.add_argument(
        "--require-engine",
        action="store_true",
        help="fail instead of writing a script when TensorRT is not available",
    )


def _plan(args):
    steps = ["export", "fuse"]
    steps += ["fp16"] if args.fp16 else []
    steps += ["int8"] if args.int8 else []
    return steps + ["parity", "check", "engine"]


def run(args) -> int:
    from tqdm import tqdm

    from pipeline.stages.export import validate_opset
    from pipeline.trt.versions import normalize_target

    validate_opset(args.opset)
    normalize_target(args.trt)  # fail before any stage runs
    if args.int8 and not args.calib_data:
        raise UserError(
            "--int8 needs --calib-data DIR (a folder of images for calibration, e.g. ImageNet val)"
        )
    preset = preset_from_args(args)
    out = out_dir_from_args(args, preset, "int8" if args.int8 else "fp16" if args.fp16 else "fp32")
    batch = parse_batch(args.batch)

    summary: dict[str, str] = {}
    steps = _plan(args)
    bar = tqdm(steps, desc="build", unit="stage", leave=True)
    # The models TensorRT gets: each precision built, else the fused fp32 model.
    engine_onnxs = [out / f"model.{p}.onnx" for p in ("fp16", "int8") if getattr(args, p)] or [
        out / "model.fused.onnx"
    ]
    t0 = time.perf_counter()
    for step in bar:
        bar.set_description(f"build [{step}]")
        if step == "export":
            from pipeline.stages.export import export

            summary["ONNX (fp32)"] = str(
                export(preset, out, weights=args.weights, opset=args.opset)
            )
        elif step == "fuse":
            from pipeline.stages.fuse import fuse

            fused = out / "model.fused.onnx"
            rec = fuse(
                out / "model.onnx",
                fused,
                attention=args.attention,
                verify=True,
                expect_blocks=preset.depth,
            )
            summary["fused"] = f"{fused} ({_fuse_line(rec)})"
        elif step == "fp16":
            from pipeline.stages.precision import to_fp16

            to_fp16(out / "model.fused.onnx", out / "model.fp16.onnx", fp16_io=args.fp16_io)
            summary["fp16"] = str(out / "model.fp16.onnx")
        elif step == "int8":
            from pipeline.stages.precision import to_int8

            to_int8(
                out / "model.fused.onnx",
                out / "model.int8.onnx",
                calib_data=args.calib_data,
                images=args.calib_images,
                method=args.calib_method,
                seed=args.calib_seed,
            )
            summary["int8"] = str(out / "model.int8.onnx")
        elif step == "parity":
            from pipeline.stages.parity import parity_ladder

            rec = parity_ladder(
                out,
                preset=preset,
                weights=args.weights,
                data=args.data or args.calib_data,
                images=args.images,
            )
            summary["parity"] = f"{out / 'parity.md'} ({_parity_line(rec)})"
        elif step == "check":
            from pipeline.trt.check import check_onnx

            warned = 0
            for onnx_path in engine_onnxs:
                problems = check_onnx(onnx_path, trt=args.trt)
                errors = [p for p in problems if p.severity == "error"]
                if errors:
                    raise UserError(
                        f"{onnx_path} will not build on TensorRT {args.trt}: "
                        + "; ".join(str(p) for p in errors[:3])
                    )
                warned += len(problems) - len(errors)
            summary["check"] = f"TensorRT {args.trt}: ok for {len(engine_onnxs)} model(s)" + (
                f" ({warned} warnings)" if warned else ""
            )
        elif step == "engine":
            from pipeline.trt.stage import engine_stage

            for onnx_path in engine_onnxs:
                rec = engine_stage(
                    onnx_path,
                    out,
                    plugins=args.plugins,
                    batch=batch,
                    trt_target=args.trt,
                    require_engine=args.require_engine,
                )
                summary[f"engine {onnx_path.stem.removeprefix('model.')}"] = (
                    rec.get("engine")
                    if rec.get("status") == "built"
                    else f"skipped (no TensorRT): {rec.get('script')}"
                )
    bar.close()
    print(f"\nbuild of {preset.name} done in {time.perf_counter() - t0:.0f} s → {out}/")
    for k, v in summary.items():
        print(f"  {k:<12} {v}")
    print(f"  {'manifest':<12} {out / 'manifest.json'}")
    return 0


def _fuse_line(rec: dict) -> str:
    text = (
        f"{rec['talking_heads']} talking-heads + {rec['class_attention']} class-attention "
        f"nodes, score tensors {rec['score_tensors']['before']} → "
        f"{rec['score_tensors']['after']}"
    )
    verify = rec.get("verify")
    return text + (f"; verify max |Δlogit| {verify['max_abs']:.1e}" if verify else "")


def _parity_line(rec: dict) -> str:
    return "; ".join(
        f"{s}: top-1 agree {r['top1_agreement']:.1%}"
        for s, r in rec.get("stages", {}).items()
        if "top1_agreement" in r
    )
