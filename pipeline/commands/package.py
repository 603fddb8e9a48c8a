"""`package triton|deepstream`: where an engine goes next — a Triton model repository, or a
DeepStream nvinfer config with the measured cost of its preprocessing (docs/serving.md)."""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import (
    DEEPSTREAM_DIR,
    ONNX_STAGES,
    TRITON_REPO,
    find_artifact,
    model_dir_name,
)
from pipeline.commands.common import dirs_from_args, preset_from_args
from pipeline.data import ImageFolderDataset
from pipeline.data.nvinfer import SCALING_FILTERS
from pipeline.errors import UserError
from pipeline.serving.triton import model_config_pb2
from pipeline.stages.deepstream import deepstream_config
from pipeline.stages.triton import triton_repository
from pipeline.trt.script import PLUGIN_LIB
from pipeline.trt.settings import parse_batch

_PRECISION = {"onnx": "fp32", "fused": "fp32", "fp16": "fp16", "int8": "int8"}


def add_arguments(p):
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    triton = sub.add_parser("triton", help="a Triton model repository (+ launch_triton.sh)")
    deepstream = sub.add_parser("deepstream", help="a DeepStream nvinfer config (+ labels)")
    for s in (triton, deepstream):
        s.add_argument(
            "--model", required=True, help="preset name (see `python -m pipeline models`)"
        )
        s.add_argument("--depth", type=int, default=None, help="as given to build")
        s.add_argument("--out", help="artifact directory (default: engines/<model>/<precision>)")
        s.add_argument(
            "--stage",
            choices=tuple(ONNX_STAGES),
            default="fp16",
            help="which model: its engine (<stem>.engine) when built, else the ONNX (default fp16)",
        )
        s.add_argument("-o", "--output", help="where to write (default: <artifact dir>/<target>)")
        s.add_argument(
            "--plugin-path",
            default=PLUGIN_LIB,
            help="the plugin library as the target sees it: relative to the written folder, or "
            f"absolute there (default {PLUGIN_LIB} in that folder)",
        )
    triton.add_argument("--name", help="served model name (default: the model's folder name)")
    triton.add_argument(
        "--batch",
        help="profile min:opt:max for an engine still to be built (default: its record's, "
        "else the engine defaults); an existing engine's profile is used as it is",
    )
    triton.add_argument("--instances", type=int, default=1, help="classifier instances per GPU")
    deepstream.add_argument(
        "--data", help="images to measure the preprocessing drift on (CPU, vs the exact one)"
    )
    deepstream.add_argument("--images", type=int, default=64, help="at most N images (default 64)")
    deepstream.add_argument(
        "--geometry",
        choices=("stretch", "pad"),
        default="stretch",
        help="stretch: nvinfer's default; pad: maintain-aspect-ratio with symmetric padding",
    )
    deepstream.add_argument("--scaling-filter", choices=tuple(SCALING_FILTERS), default="bilinear")
    deepstream.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="classifier-threshold, compared with the top logit (the engine outputs logits)",
    )


def run(args) -> int:
    preset = preset_from_args(args)
    dirs = dirs_from_args(args, preset, _PRECISION[args.stage])
    onnx_path = find_artifact(args.stage, dirs)
    folder = TRITON_REPO if args.target == "triton" else DEEPSTREAM_DIR
    output = Path(args.output) if args.output else onnx_path.parent / folder
    target = _triton if args.target == "triton" else _deepstream
    return target(args, preset, onnx_path, output)


def _triton(args, preset, onnx_path: Path, output: Path) -> int:
    model_config_pb2()  # tritonclient present, before anything runs
    if args.instances < 1:
        raise UserError(f"--instances must be >= 1, got {args.instances}")
    rec = triton_repository(
        onnx_path,
        output,
        name=args.name or model_dir_name(preset.name, args.depth),
        plugin_path=args.plugin_path,
        batch=parse_batch(args.batch) if args.batch else None,
        instances=args.instances,
    )
    d = rec.data
    state = f"engine {d['engine']}" if d["engine"] else "ONNX + build script (no engine yet)"
    print(
        f"triton: wrote {output} — models {', '.join(d['models'])}; {state}; "
        f"max_batch_size {d['max_batch_size']}; start it with {output / 'launch_triton.sh'}"
    )
    return 0


def _deepstream(args, preset, onnx_path: Path, output: Path) -> int:
    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    if args.data is not None:
        ImageFolderDataset.from_dir(args.data)  # exists and holds images, before any work
    rec = deepstream_config(
        onnx_path,
        output,
        plugin_path=args.plugin_path,
        geometry=args.geometry,
        scaling_filter=args.scaling_filter,
        threshold=args.threshold,
        data=args.data,
        images=args.images,
    )
    print(f"deepstream: wrote {', '.join(str(p) for p in rec.outputs.values())}")
    drift = rec.get("drift")
    if not drift:
        print("  preprocessing drift not measured: pass --data DIR (figures: docs/serving.md)")
        return 0
    for v, f in drift["variants"].items():
        if v != "exact":
            print(
                f"  {v:<17} top-1 agreement {f['top1_agreement']:.2%}  max|Δlogit| "
                f"{f['max_abs']:.3g}  mean|Δlogit| {f['mean_abs']:.3g}"
            )
    return 0
