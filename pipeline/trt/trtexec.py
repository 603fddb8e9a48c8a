"""`trtexec` command lines for building and profiling, for TensorRT 10.x and 11.x.

The lines are data (lists of arguments) so that the tests can assert them and the build script
can print them; version differences come from `versions.py`. No precision flag is ever emitted:
precision comes from the ONNX (strong typing; TensorRT 11 has no such flags at all).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pipeline.errors import UserError
from pipeline.trt import versions
from pipeline.trt.settings import DEFAULTS

_UNITS = {"": 1 << 20, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}  # bare number = MiB,
# as trtexec reads `--memPoolSize` (sampleOptions.cpp: "default unit is in MiB").


def parse_size(text: str | int) -> int:
    """'2G' / '512M' / '1024' (MiB) → bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([BKMG]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UserError(f"cannot read size {text!r}; write it like 2G, 512M or 1024 (MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def shape_spec(name: str, shape) -> str:
    """trtexec shape spec `name:1x3x224x224` (names with ':' or spaces need quoting: avoided)."""
    return f"{name}:" + "x".join(str(int(d)) for d in shape)


def build_command(
    onnx: str | Path,
    engine: str | Path,
    *,
    target: str,
    input_name: str,
    input_shape: tuple[int, ...],
    batch: tuple[int, int, int] = DEFAULTS.batch,
    workspace: str | int = DEFAULTS.workspace,
    opt_level: int = DEFAULTS.opt_level,
    timing_cache: str | Path | None = None,
    plugins: str | Path | None = None,
    trtexec: str = "trtexec",
) -> list[str]:
    """The trtexec line that builds the same engine as `pipeline.trt.build.build_engine`.

    `input_shape` is the per-image shape (C, H, W); the batch axis gets min/opt/max from `batch`.
    `--noTF32` matches Polygraphy's CreateConfig, which turns TF32 off unless asked, so fp32 layers
    stay fp32 in both builders. `--profilingVerbosity=detailed` keeps layer names and ONNX node
    metadata in the engine so that `--exportLayerInfo` can map time back to CaiT blocks.
    `--staticPlugins` loads the library with dlopen at start-up (one loading mechanism only).
    """
    bmin, bopt, bmax = batch
    mib = parse_size(workspace) >> 20
    args = [
        trtexec,
        f"--onnx={onnx}",
        f"--saveEngine={engine}",
        f"--minShapes={shape_spec(input_name, (bmin, *input_shape))}",
        f"--optShapes={shape_spec(input_name, (bopt, *input_shape))}",
        f"--maxShapes={shape_spec(input_name, (bmax, *input_shape))}",
        f"--memPoolSize=workspace:{mib}M",
        f"--builderOptimizationLevel={int(opt_level)}",
        "--noTF32",
        "--profilingVerbosity=detailed",
        "--skipInference",
    ]
    args += versions.trtexec_build_flags(target)
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    if plugins:
        args.append(f"--staticPlugins={plugins}")
    _assert_no_precision_flags(args)
    return args


def timing_args(
    engine: str | Path,
    *,
    target: str,
    input_name: str,
    input_shape: tuple[int, ...],
    batch: int,
    duration_s: int,
    trtexec: str = "trtexec",
) -> list[str]:
    """Load `engine` and time it at `batch`, like for like on 10.x and 11.x: a warm-up, then at
    least `duration_s` seconds of iterations, with 11.x's defaults (CUDA graphs, spin-wait, no
    data transfers, profiling in a separate run) spelled out on 10.x."""
    return [
        trtexec,
        f"--loadEngine={engine}",
        f"--shapes={shape_spec(input_name, (batch, *input_shape))}",
        f"--duration={int(duration_s)}",
        "--warmUp=500",
        *versions.trtexec_benchmark_flags(target),
    ]


def profile_command(
    engine: str | Path,
    *,
    target: str,
    input_name: str,
    input_shape: tuple[int, ...],
    batch: int,
    export_dir: str | Path,
    plugins: str | Path | None = None,
    duration_s: int = 10,
    trtexec: str = "trtexec",
) -> list[str]:
    """The trtexec line that benchmarks and profiles an engine like for like on 10.x and 11.x."""
    d = Path(export_dir)
    args = timing_args(
        engine,
        target=target,
        input_name=input_name,
        input_shape=input_shape,
        batch=batch,
        duration_s=duration_s,
        trtexec=trtexec,
    )
    args += [
        "--percentile=50,90,95,99",
        "--profilingVerbosity=detailed",
        f"--exportProfile={d / 'profile.json'}",
        f"--exportLayerInfo={d / 'layers.json'}",
        f"--exportTimes={d / 'times.json'}",
    ]
    if plugins:
        args.append(f"--staticPlugins={plugins}")
    _assert_no_precision_flags(args)
    return args


def benchmark_command(
    engine: str | Path, *, times_path: str | Path, duration_s: int = 5, **timing
) -> list[str]:
    """The trtexec line that times one candidate engine for the attention choice (`timing`: the
    arguments of `timing_args`): its per-batch GPU compute times go to `times_path`
    (`--exportTimes`), whose median the choice compares."""
    args = timing_args(engine, duration_s=duration_s, **timing)
    args.append(f"--exportTimes={times_path}")
    _assert_no_precision_flags(args)
    return args


def _assert_no_precision_flags(args: list[str]) -> None:
    bad = [a for a in args if a.split("=")[0] in versions.FORBIDDEN_TRTEXEC_FLAGS]
    if bad:  # a programming error, not a user error
        raise AssertionError(
            f"precision flags {bad} must never be passed: precision is in the ONNX"
        )


def quote(args: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)
