"""Arguments shared by every command that writes artifacts: same names, same meaning everywhere."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.presets import Preset, get_preset


def add_model_args(p: argparse.ArgumentParser, out_help: str = "artifact directory "
                   "(default: engines/<model>/fp32)") -> None:
    p.add_argument("--model", required=True, help="preset name (see `python -m pipeline models`)")
    p.add_argument("--weights", help=".pdparams, .safetensors or .pth checkpoint "
                   "(default: random initialisation — accuracy meaningless)")
    p.add_argument("--out", help=out_help)
    p.add_argument("--depth", type=int, default=None,
                   help="override the number of talking-heads blocks (testing big presets cheaply)")


def preset_from_args(args) -> Preset:
    return get_preset(args.model, depth=args.depth)


def out_dir_from_args(args, preset: Preset) -> Path:
    if args.out:
        return Path(args.out)
    name = preset.name if args.depth is None else f"{preset.name}_d{preset.depth}"
    return Path("engines") / name / "fp32"
