"""Arguments shared by every command that writes artifacts: same names, same meaning everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import UserError
from pipeline.presets import Preset, get_preset


def add_model_args(
    p: argparse.ArgumentParser, out_help: str = "artifact directory (default: engines/<model>/fp32)"
) -> None:
    p.add_argument("--model", required=True, help="preset name (see `python -m pipeline models`)")
    p.add_argument(
        "--weights",
        help=".pdparams, .safetensors or .pth checkpoint "
        "(default: random initialisation — accuracy meaningless)",
    )
    p.add_argument("--out", help=out_help)
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help="override the number of talking-heads blocks (testing big presets cheaply)",
    )


def parse_batch(text: str) -> tuple[int, int, int]:
    """`--batch min:opt:max` (or one number for a static profile) → (min, opt, max)."""
    try:
        parts = tuple(int(p) for p in str(text).split(":"))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise UserError(
            f"--batch {text!r}: write min:opt:max with 1 ≤ min ≤ opt ≤ max, e.g. 1:8:32"
        )
    return parts


def preset_from_args(args) -> Preset:
    return get_preset(args.model, depth=args.depth)


def out_dir_from_args(args, preset: Preset, precision: str = "fp32") -> Path:
    """--out, else engines/<model>[_d<depth>]/<precision>."""
    if args.out:
        return Path(args.out)
    name = preset.name if args.depth is None else f"{preset.name}_d{preset.depth}"
    return Path("engines") / name / precision
