"""Arguments shared by every command that writes artifacts: same names, same meaning everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.artifacts import artifact_dir, artifact_dirs, model_dir_name
from pipeline.presets import Preset, get_preset
from pipeline.runners.triton import parse_url
from pipeline.serving.triton import model_names
from pipeline.trt.settings import DEFAULTS, EngineSettings, parse_batch
from pipeline.trt.versions import TARGETS


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


def add_engine_args(p: argparse.ArgumentParser, *, target: bool = False) -> None:
    """--batch, --workspace, --opt-level, --timing-cache (and --trt): one set of defaults."""
    p.add_argument(
        "--batch",
        default=DEFAULTS.batch_text,
        help=f"optimization profile min:opt:max on the batch axis (default {DEFAULTS.batch_text})",
    )
    p.add_argument(
        "--workspace",
        default=DEFAULTS.workspace,
        help=f"workspace memory pool limit (default {DEFAULTS.workspace})",
    )
    p.add_argument(
        "--opt-level",
        type=int,
        default=DEFAULTS.opt_level,
        choices=range(0, 6),
        metavar="0-5",
        help=f"builder optimization level (default {DEFAULTS.opt_level})",
    )
    p.add_argument("--timing-cache", help="timing cache file, loaded if present and saved after")
    if target:
        p.add_argument(
            "--trt",
            default=DEFAULTS.target,
            help="TensorRT target for the "
            f"compatibility check and the engine script: {', '.join(TARGETS)} "
            f"(default {DEFAULTS.target}, the Jetson floor)",
        )


def add_calibration_args(p) -> None:
    """--calib-data, --calib-images, --calib-method, --calib-seed: one set of defaults for every
    command that calibrates (build, quantize)."""
    p.add_argument(
        "--calib-data",
        help="image folder for calibration (ImageNet val layout or class folders); the parity "
        "images are set aside from it",
    )
    p.add_argument(
        "--calib-images",
        type=int,
        default=512,
        help="calibration images (default 512; NVIDIA advises >= 500 for ViTs)",
    )
    p.add_argument(
        "--calib-method",
        choices=["entropy", "percentile", "max"],
        help="INT8: entropy (default), percentile, max; FP8: max (default), percentile",
    )
    p.add_argument("--calib-seed", type=int, default=0)


def calibration_kwargs(args) -> dict:
    """The calibration stage's keywords from parsed calibration arguments (and --fp16-io)."""
    return dict(
        calib_data=args.calib_data,
        images=args.calib_images,
        method=args.calib_method,
        seed=args.calib_seed,
        fp16_io=args.fp16_io,
    )


def engine_settings(args) -> EngineSettings:
    """The EngineSettings of parsed engine arguments (UserError on a bad --batch or --trt)."""
    return EngineSettings(
        batch=parse_batch(args.batch),
        workspace=args.workspace,
        opt_level=args.opt_level,
        timing_cache=args.timing_cache,
        target=getattr(args, "trt", DEFAULTS.target),
    )


def preset_from_args(args) -> Preset:
    return get_preset(args.model, depth=args.depth)


def out_dir_from_args(args, preset: Preset, precision: str = "fp32") -> Path:
    """--out, else engines/<model>[_d<depth>]/<precision>."""
    return artifact_dir(preset.name, precision, depth=args.depth, out=args.out)


def dirs_from_args(args, preset: Preset, prefer: str) -> list[Path]:
    """--out, else every precision folder of the model, `prefer` first."""
    return artifact_dirs(preset.name, prefer, depth=args.depth, out=args.out)


def add_triton_args(p: argparse.ArgumentParser, what: str) -> None:
    """--url, --protocol, --triton-model, --concurrency: the served model (`eval`, `parity`)."""
    p.add_argument("--url", help=f"Triton server HOST:PORT: {what}")
    p.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="Triton protocol (default http; gRPC listens on its own port, 8001 by default)",
    )
    p.add_argument(
        "--triton-model",
        help="served classifier (default <model>_trt, as `package triton` names it)",
    )
    p.add_argument(
        "--concurrency", type=int, default=4, help="concurrent Triton requests (default 4)"
    )


def served_from_args(args, preset: Preset) -> dict | None:
    """The `served` spec of open_runner("triton"), or None without --url."""
    if not args.url:
        return None
    name = args.triton_model or model_names(model_dir_name(preset.name, args.depth))["classifier"]
    return {
        "url": parse_url(args.url),  # a malformed URL fails before any image is read
        "model": name,
        "protocol": args.protocol,
        "concurrency": args.concurrency,
    }
