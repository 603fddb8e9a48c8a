"""`parity`: the ladder over every stage in the artifact directory (parity.json/.md/.png)."""

from __future__ import annotations

from pipeline.artifacts import EXPORTED
from pipeline.commands.common import (
    add_model_args,
    add_triton_args,
    dirs_from_args,
    preset_from_args,
    served_from_args,
)
from pipeline.errors import UserError
from pipeline.runners import CPU_RUNTIMES
from pipeline.stages.parity import parity_ladder


def add_arguments(p):
    add_model_args(
        p,
        out_help="artifact directory (default: engines/<model>/int8, fp16 or fp32, "
        "the first that exists)",
    )
    p.add_argument(
        "--data", help="images (labelled → accuracy too); default: synthetic images, agreement only"
    )
    p.add_argument("--labels", help="PaddleClas-style label list for a flat --data folder")
    p.add_argument("--images", type=int, default=256, help="parity images (default 256)")
    p.add_argument(
        "--thresholds",
        help="JSON file: {stage: {min_top1_agreement, "
        "max_top1_drop_pt, min_cosine, max_abs_logit}} (defaults: fp16 agreement "
        "≥ 0.99, int8 drop ≤ 1 pt)",
    )
    p.add_argument(
        "--bisect",
        nargs="?",
        const=True,
        default=False,
        metavar="STAGE",
        help="per-block errors of the failing stage (or of STAGE: fused, fp16, int8…);"
        " names the first block whose error jumps",
    )
    p.add_argument(
        "--backend",
        choices=CPU_RUNTIMES,
        default="onnxruntime",
        help="runtime of the ONNX rungs: onnxruntime (default) or openvino",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="parity split seed (default: the INT8 stage's, else 0)",
    )
    add_triton_args(p, "add the model it serves as the last rung, `triton`")


def run(args) -> int:
    preset = preset_from_args(args)
    dirs = dirs_from_args(args, preset, "int8")
    out = next((d for d in dirs if (d / EXPORTED).exists() or any(d.glob("model.*.onnx"))), None)
    if out is None:
        raise UserError(
            f"no artifacts for {preset.name} in {', '.join(map(str, dirs))}: "
            "run build/export first or pass --out DIR"
        )
    rec = parity_ladder(
        out,
        preset=preset,
        weights=args.weights,
        data=args.data,
        images=args.images,
        thresholds=args.thresholds,
        bisect=args.bisect,
        labels=args.labels,
        seed=args.seed,
        served=served_from_args(args, preset),
        backend=args.backend,
    )
    for name, f in rec["stages"].items():
        if name == "paddle":
            continue
        acc = f"  top-1 {f['acc_top1']:.2%}" if "acc_top1" in f else ""
        print(
            f"{name:<14} agree {f['top1_agreement']:7.2%}  max|Δ| {f['max_abs']:.3g}  "
            f"cos {f['cosine_mean']:.6f}{acc}"
        )
    print(f"wrote {out / 'parity.md'}, parity.json, parity.png")
    return 0
