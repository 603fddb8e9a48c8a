"""`export`: Paddle CaiT → ONNX (paddle2onnx), verified against Paddle with ONNX Runtime."""

from __future__ import annotations

from pipeline.commands.common import add_model_args, out_dir_from_args, preset_from_args
from pipeline.stages.export import export, validate_opset


def add_arguments(p):
    add_model_args(p)
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13–20 (default 17)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    p.add_argument("--force", action="store_true", help="re-run even if inputs are unchanged")


def run(args) -> int:
    validate_opset(args.opset)  # fail before the slow imports
    preset = preset_from_args(args)
    export(
        preset,
        out_dir_from_args(args, preset),
        weights=args.weights,
        opset=args.opset,
        seed=args.seed,
        force=args.force,
    )
    return 0
