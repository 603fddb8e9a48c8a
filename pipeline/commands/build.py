"""`build`: the whole pipeline for one preset — export → fuse (+verify) → precision → parity →
attention variants → compatibility check → engine (or, without TensorRT, a ready script for the
target).

`--attention auto` (the default) leaves plugin-or-ONNX per fused op to a measurement: the
variants step writes every candidate model, and the engine step builds and times them on a
TensorRT host, or writes the target script that does, and keeps the fastest.

Every input is validated before the first stage runs (a bad calibration folder fails in a
second, not after export), the steps are a table, and the closing summary says what was written
where.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from pipeline.artifacts import CANDIDATES, EXPORTED, FP16, FUSED, INT8, MANIFEST, PARITY_MD
from pipeline.commands.common import (
    add_calibration_args,
    add_engine_args,
    add_model_args,
    calibration_kwargs,
    engine_settings,
    out_dir_from_args,
    preset_from_args,
)
from pipeline.contract import PLUGIN_OPS
from pipeline.data import ImageFolderDataset
from pipeline.errors import UserError
from pipeline.presets import Preset
from pipeline.stages.engine import engine_choice_stage, engine_stage
from pipeline.stages.export import export, validate_opset
from pipeline.stages.fuse import fuse
from pipeline.stages.parity import parity_ladder
from pipeline.stages.precision import to_fp16
from pipeline.stages.quantize import FORMATS, calibration_set, quantize
from pipeline.stages.variants import candidates, describe, parse_attention, variants_stage
from pipeline.trt.check import check_onnx
from pipeline.trt.settings import EngineSettings
from pipeline.trt.versions import refuse_fp8
from pipeline.weights import checkpoint_path

log = logging.getLogger(__name__)


def add_arguments(p):
    add_model_args(p, out_help="artifact directory (default: engines/<model>/<fp32|fp16|int8>)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13–20 (default 17)")
    p.add_argument(
        "--attention",
        default="auto",
        metavar="MODE",
        help="per fused op, TensorRT plugin or plain ONNX: auto (default: build both where "
        "TensorRT is, time them at the opt batch and keep the faster; never a plugin slower "
        "than its plugin-free twin), plugin, onnx, or per op th=plugin,ca=auto "
        "(th: talking heads, ca: class attention; an op not named is auto)",
    )
    g = p.add_argument_group("precision")
    g.add_argument("--fp16", action="store_true", help="write model.fp16.onnx (mixed precision)")
    g.add_argument("--fp16-io", action="store_true", help="fp16 graph inputs/outputs")
    g.add_argument("--int8", action="store_true", help="write model.int8.onnx (explicit Q/DQ)")
    g.add_argument(
        "--fp8",
        action="store_true",
        help="write model.fp8.onnx (E4M3 Q/DQ; needs compute capability >= 8.9, so "
        "--trt 10.16 or 11.x: never Orin)",
    )
    add_calibration_args(g)
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
    add_engine_args(g, target=True)
    g.add_argument("--plugins", help="libcait_trt_plugins.so to load when building the engine")
    g.add_argument(
        "--require-engine",
        action="store_true",
        help="fail instead of writing a script when TensorRT is not available",
    )


# The artifact folder a build writes to by default: its most quantized precision.
PRECISION_DIRS = ("int8", "fp8", "fp16")


@dataclasses.dataclass
class Build:
    """What the steps share: the validated inputs, and the summary they fill in."""

    args: object
    preset: Preset
    out: Path
    engine: EngineSettings
    attention: dict  # fused op → "plugin" | "onnx" | "auto"
    summary: dict = dataclasses.field(default_factory=dict)
    lowered: frozenset = frozenset()  # fused ops the fused model holds as plain ONNX
    variants: dict = dataclasses.field(default_factory=dict)  # model → [(Candidate, path)]

    @property
    def candidates(self) -> list:
        return candidates(self.attention, self.lowered)

    @property
    def engine_onnxs(self) -> list[Path]:
        """The models TensorRT gets: each precision built, else the fused fp32 model."""
        a, fp8 = self.args, FORMATS["fp8"].artifact
        built = [
            self.out / name for name, on in ((FP16, a.fp16), (INT8, a.int8), (fp8, a.fp8)) if on
        ]
        return built or [self.out / FUSED]


def validate(args) -> Build:
    """Every check that needs no stage, so that bad input fails before anything is written."""
    validate_opset(args.opset)
    settings = engine_settings(args)  # --batch, --trt
    attention = parse_attention(args.attention)
    preset = preset_from_args(args)
    if args.weights:
        checkpoint_path(args.weights)
    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    if args.fp8:
        refuse_fp8(settings.target)
    for precision in [p for p in FORMATS if getattr(args, p)]:
        if not args.calib_data:
            raise UserError(
                f"--{precision} needs --calib-data DIR (a folder of images for calibration, "
                "e.g. ImageNet val)"
            )
        calibration_set(**calibration_kwargs(args), precision=precision)
    if args.data:
        ImageFolderDataset.from_dir(args.data)
    if args.plugins and not Path(args.plugins).is_file():
        raise UserError(
            f"--plugins {args.plugins}: no such file (build it with CMake, target cait_trt_plugins)"
        )
    out = out_dir_from_args(
        args, preset, next((p for p in PRECISION_DIRS if getattr(args, p)), "fp32")
    )
    return Build(args, preset, out, settings, attention)


def _export(b: Build) -> None:
    rec = export(b.preset, b.out, weights=b.args.weights, opset=b.args.opset)
    b.summary["ONNX (fp32)"] = str(rec.path)


def _fuse(b: Build) -> None:
    rec = fuse(
        b.out / EXPORTED,
        b.out / FUSED,
        attention=b.attention,
        verify=True,
        expect_blocks=b.preset.depth,
    )
    b.summary["fused"] = f"{rec.path} ({_fuse_line(rec)})"
    b.lowered = frozenset(rec.get("lowered", ()))


def _fp16(b: Build) -> None:
    b.summary["fp16"] = str(to_fp16(b.out / FUSED, b.out / FP16, fp16_io=b.args.fp16_io).path)


def _quantized(precision: str):
    """The INT8 or FP8 step: one calibration split, the same settings, one summary line."""

    def step(b: Build) -> None:
        rec = quantize(
            b.out / FUSED,
            b.out / FORMATS[precision].artifact,
            precision=precision,
            **calibration_kwargs(b.args),
        )
        b.summary[precision] = str(rec.path)

    return step


def _parity(b: Build) -> None:
    rec = parity_ladder(
        b.out,
        preset=b.preset,
        weights=b.args.weights,
        data=b.args.data or b.args.calib_data,
        images=b.args.images,
    )
    b.summary["parity"] = f"{b.out / PARITY_MD} ({_parity_line(rec)})"


def _variants(b: Build) -> None:
    """Every candidate of each model TensorRT gets, when `auto` leaves a choice."""
    cands = b.candidates
    for onnx_path in b.engine_onnxs:
        if len(cands) == 1:
            b.variants[onnx_path] = [(cands[0], onnx_path)]
            continue
        rec = variants_stage(onnx_path, cands, kept_plugins=PLUGIN_OPS - b.lowered)
        b.variants[onnx_path] = [(c, rec.outputs[c.name]) for c in cands]
    if len(cands) > 1:
        b.summary["attention"] = (
            f"{describe(b.attention)}: {len(cands)} candidates "
            f"({', '.join(c.name for c in cands)}) per model, in "
            f"{b.out / CANDIDATES}/"
        )


def _check(b: Build) -> None:
    warned = 0
    target = b.engine.target
    models = [p for cands in b.variants.values() for _, p in cands] or b.engine_onnxs
    for onnx_path in models:
        problems = check_onnx(onnx_path, trt=target)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise UserError(
                f"{onnx_path} will not build on TensorRT {target}: "
                + "; ".join(str(p) for p in errors[:3])
            )
        warned += len(problems) - len(errors)
    b.summary["check"] = f"TensorRT {target}: ok for {len(models)} model(s)" + (
        f" ({warned} warnings)" if warned else ""
    )


def _engine(b: Build) -> None:
    for onnx_path in b.engine_onnxs:
        key = f"engine {onnx_path.stem.removeprefix('model.')}"
        cands = b.variants.get(onnx_path) or [(b.candidates[0], onnx_path)]
        if len(cands) > 1:
            rec = engine_choice_stage(
                onnx_path,
                cands,
                b.out,
                plugins=b.args.plugins,
                settings=b.engine,
                require_engine=b.args.require_engine,
                attention=describe(b.attention),
            )
            b.summary[key] = _choice_line(rec)
            continue
        rec = engine_stage(
            onnx_path,
            b.out,
            plugins=b.args.plugins,
            settings=b.engine,
            require_engine=b.args.require_engine,
        )
        b.summary[key] = (
            rec["engine"] if rec["status"] == "built" else f"skipped (no TensorRT): {rec['script']}"
        )


def _choice_line(rec) -> str:
    if rec["status"] == "pending":
        return (
            f"skipped ({rec['reason']}): {rec['script']} builds and times "
            f"{len(rec['candidates'])} candidates on the target and keeps the fastest"
        )
    c = rec["choice"]
    times = ", ".join(f"{r['candidate']} {r['median_ms']:.3f} ms" for r in c["candidates"])
    return f"{rec['engine']}: kept {c['winner']} ({times})"


# (name, step, when): the order is the pipeline's.
STEPS = [
    ("export", _export, lambda a: True),
    ("fuse", _fuse, lambda a: True),
    ("fp16", _fp16, lambda a: a.fp16),
    ("int8", _quantized("int8"), lambda a: a.int8),
    ("fp8", _quantized("fp8"), lambda a: a.fp8),
    ("parity", _parity, lambda a: True),
    ("variants", _variants, lambda a: True),
    ("check", _check, lambda a: True),
    ("engine", _engine, lambda a: True),
]


def run(args) -> int:
    from tqdm import tqdm

    b = validate(args)
    steps = [(name, step) for name, step, when in STEPS if when(args)]
    t0 = time.perf_counter()
    with tqdm(total=len(steps), desc="build", unit="stage", leave=True) as bar:
        for name, step in steps:
            bar.set_description(f"build [{name}]")
            step(b)
            bar.update()
    print(f"\nbuild of {b.preset.name} done in {time.perf_counter() - t0:.0f} s → {b.out}/")
    for k, v in b.summary.items():
        print(f"  {k:<12} {v}")
    print(f"  {'manifest':<12} {b.out / MANIFEST}")
    return 0


def _fuse_line(rec) -> str:
    text = (
        f"{rec['talking_heads']} talking-heads + {rec['class_attention']} class-attention "
        f"nodes, score tensors {rec['score_tensors']['before']} → "
        f"{rec['score_tensors']['after']}"
    )
    verify = rec.get("verify")
    return text + (f"; verify max |Δlogit| {verify['max_abs']:.1e}" if verify else "")


def _parity_line(rec) -> str:
    return "; ".join(
        f"{s}: top-1 agree {r['top1_agreement']:.1%}"
        for s, r in rec.get("stages", {}).items()
        if "top1_agreement" in r
    )
