"""`python -m pipeline <command>`: the CLI only chains stages; each stage is a plain function.

Commands live one per module in `pipeline/commands/`, listed explicitly below with their help
line. Each module defines `add_arguments(parser)` and `run(args) -> int`. A `UserError` anywhere becomes one
`error: …` line on stderr and exit code 2 (traceback only with `--verbose`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings

from pipeline.cpu import apply_cpu_defaults
from pipeline.errors import UserError

# Explicit, ordered (the order of `--help`): command → one-line help. Only the command that
# runs is imported, so `--help` and `models` stay instant (stages import ONNX, Paddle, …).
COMMANDS = {
    "models": "list the CaiT presets (architecture, exact parameter count, GFLOPs)",
    "export": (
        "export a preset to DIR/model.onnx and check ONNX Runtime against Paddle (|Δ| ≤ 1e-4)"
    ),
    "fuse": (
        "fuse CaiT attention in an ONNX model: IN.onnx → OUT.onnx (plugin nodes, or the "
        "plugin-free fast path with --attention onnx); prints rewrites per pass"
    ),
    "quantize": (
        "calibrate on a folder of images and write DIR/model.int8.onnx or model.fp8.onnx "
        "(explicit Q/DQ for TensorRT; statistics cached in DIR/calib.json)"
    ),
    "build": (
        "build a preset end to end: export, fuse, FP16/INT8/FP8, parity ladder, TensorRT "
        "engine (or the script that builds it on the target)"
    ),
    "engine": (
        "build a TensorRT engine from an ONNX model (strongly typed; precision from the ONNX)"
    ),
    "check": "statically check an ONNX model against a TensorRT release's ONNX parser",
    "parity": (
        "compare every stage in the artifact directory with Paddle (agreement, |Δlogit|, "
        "accuracy with labels); exit 1 on a threshold violation"
    ),
    "eval": (
        "top-1/top-5 accuracy of one stage (paddle, onnx, fused, fp16, int8, fp8, engine, "
        "openvino) or of a Triton-served model (triton) on a folder"
    ),
    "infer": (
        "classify images with a TensorRT engine (--engine) or an ONNX model (--onnx) on "
        "ONNX Runtime or OpenVINO"
    ),
    "explain": (
        "class-attention maps per head (last class-attention layer) from the deployed ONNX, "
        "checked against Paddle: PNG overlays and raw .npy"
    ),
    "package": (
        "package an engine for serving: a Triton model repository (triton) or a DeepStream "
        "nvinfer config with its measured preprocessing drift (deepstream)"
    ),
    "profile": (
        "profile an engine with trtexec: images/s, GPU time percentiles, time per CaiT block kind"
    ),
    "choose": "keep the fastest candidate engine measured on the target (used by the target script)",
}


def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported and gets its arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Deploy PaddlePaddle CaiT classifiers to TensorRT (export → fuse → precision "
        "→ engine → parity).",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks and debug logs",
        )
        if name == command:
            command_module(name).add_arguments(p)
    return parser


def command_module(name: str):
    return importlib.import_module(f"pipeline.commands.{name}")


def main(argv: list[str] | None = None) -> int:
    apply_cpu_defaults()  # before anything imports Paddle
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ logging off the console
    warnings.filterwarnings("ignore", message="No ccache found")  # Paddle, at every import
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = make_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(command_module(args.command).run(args) or 0)
    except UserError as e:
        _close_progress_bars()
        if args.verbose:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        _close_progress_bars()
        print("error: interrupted", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """Close every tqdm bar still open, so none redraws (a stray `[A`) after the error line."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is None:
        return
    # innermost first: a nested bar moves the cursor up to its parent's line when it closes
    bars = sorted(getattr(tqdm.tqdm, "_instances", ()), key=lambda b: -abs(getattr(b, "pos", 0)))
    for bar in bars:
        bar.close()
    if bars:
        sys.stderr.flush()
