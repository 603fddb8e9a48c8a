"""`python -m pipeline <command>`: the CLI only chains stages; each stage is a plain function.

Commands live one per module in `pipeline/commands/`, listed explicitly below. Each module
defines `HELP`, `add_arguments(parser)` and `run(args) -> int`. A `UserError` anywhere becomes one
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

from pipeline.errors import UserError

# Explicit, ordered: the order of `--help`.
COMMANDS = [
    "models",
    "export",
    "fuse",
    "quantize",
    "build",
    "engine",
    "check",
    "parity",
    "eval",
    "infer",
    "profile",
]


def _load(name: str):
    try:
        return importlib.import_module(f"pipeline.commands.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"pipeline.commands.{name}":
            return None  # command not implemented in this checkout
        raise


def make_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Deploy PaddlePaddle CaiT classifiers to TensorRT (export → fuse → precision "
        "→ engine → parity).",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks and debug logs",
        )
        mod.add_arguments(p)
        modules[name] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    from pipeline.cpu import apply_cpu_defaults

    apply_cpu_defaults()  # before anything imports Paddle
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ logging off the console
    warnings.filterwarnings("ignore", message="No ccache found")  # Paddle, at every import
    parser, modules = make_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(modules[args.command].run(args) or 0)
    except UserError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
