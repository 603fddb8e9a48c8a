"""Every TensorRT-version-dependent fact the pipeline relies on, with its source.

Strong typing in the Python API: `NetworkDefinitionCreationFlag.kSTRONGLY_TYPED` is 1 in 10.3 and
0 (deprecated, ignored: always strongly typed) in 11.1 (include/NvInfer.h at v10.3.0 and v11.1).
Polygraphy's `CreateNetwork(strongly_typed=True)` reads it from the installed `tensorrt` as
`1 << int(flag)`, so the value is never hard-coded here.

Targets are named as the user names them on the command line: "10.3" (JetPack 6.1/6.2, the floor
for every feature), "10.16" (JetPack 7.2) and "11.x". Sources are NVIDIA/TensorRT at the tags
v10.3.0, v10.16 and v11.1 (files named below); docs/architecture.md collects them.
"""

from __future__ import annotations

import re

from pipeline.errors import UserError

TARGETS = ("10.3", "10.16", "11.x")
DEFAULT_TARGET = "10.3"

# trtexec precision flags: weak typing. Removed in TensorRT 11 and never wanted here, because
# precision comes from the ONNX (strong typing).
FORBIDDEN_TRTEXEC_FLAGS = ("--fp16", "--int8", "--best", "--bf16", "--fp8")


def normalize_target(trt: str) -> str:
    """'10.3' / '10.3.0.26' / '10.16.1' / '11' / '11.1' → one of TARGETS (or a UserError)."""
    t = str(trt).strip().lower()
    if t in TARGETS:
        return t
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.[\dx]+)*", t.replace(".x", ""))
    if not m:
        raise UserError(f"unknown TensorRT target {trt!r}; use one of {', '.join(TARGETS)}")
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    if major == 11:
        return "11.x"
    if major == 10 and minor >= 16:
        return "10.16"
    if major == 10 and minor >= 3:
        # 10.4–10.15 are checked against the 10.3 table: the conservative floor.
        return "10.3"
    if major > 11:
        raise UserError(
            f"TensorRT {trt} is newer than the parser tables in pipeline/trt/"
            "parser_ops.json (up to 11.x); add its onnx-tensorrt operators.md there"
        )
    raise UserError(
        f"TensorRT {trt} is below the supported floor 10.3 (JetPack 6.1); "
        "JetPack 5's TensorRT 8.5 lacks IPluginV3 and strong typing"
    )


def is_11(target: str) -> bool:
    return normalize_target(target) == "11.x"


def trtexec_build_flags(target: str) -> list[str]:
    """trtexec flags that make the build strongly typed.

    10.x: `--stronglyTyped` ("Create a strongly typed network", samples/common/sampleOptions.cpp
    v10.3.0). 11.x: the flag is "[Deprecated] … a no-op" (same file, v11.1), so it is left out.
    """
    return [] if is_11(target) else ["--stronglyTyped"]


def trtexec_benchmark_flags(target: str) -> list[str]:
    """Flags that make a 10.x trtexec run measure what 11.x measures by default.

    trtexec 11.1 enables CUDA graphs, spin-wait, no data transfers and a separate profiling run by
    default and marks `--useCudaGraph/--noDataTransfers/--useSpinWait/--separateProfileRun` as
    deprecated no-ops (sampleOptions.cpp v11.1); 10.3 has them off by default (v10.3.0).
    """
    if is_11(target):
        return []
    return ["--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--separateProfileRun"]


# FP8 (E4M3) tensor cores exist from compute capability 8.9: Ada 8.9, Hopper 9.0, Blackwell 10.x
# and 12.x; Ampere (8.0/8.6) and Jetson Orin (8.7) have none (TensorRT-RTX support matrix, "FP8"
# column: 8.9 yes, 8.6 no; Transformer Engine support matrix: "requires compute capability 8.9
# or higher"). FP8 MHA fusion on Ada and per-channel FP8 GEMM scaling on Hopper arrived in
# TensorRT 10.6 (release notes 10.6.0), after the 10.3 floor.
FP8_MIN_COMPUTE = "8.9"
# The GPU a target implies: "10.3" is JetPack 6.1/6.2, which runs on Orin (8.7) alone.
TARGET_COMPUTE = {"10.3": "8.7"}


def compute_tuple(cc: str) -> tuple[int, int]:
    """'8.9' → (8, 9); a UserError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(cc))
    if not m:
        raise UserError(f"compute capability {cc!r}: give it as MAJOR.MINOR, e.g. 8.7 or 9.0")
    return int(m.group(1)), int(m.group(2))


def fp8_refusal(target: str, compute: str | None = None) -> str | None:
    """Why an FP8 model cannot run on `target` (with a GPU of compute capability `compute`, else
    the one the target implies); None when nothing known forbids it."""
    target = normalize_target(target)
    cc = compute or TARGET_COMPUTE.get(target)
    if cc is None or compute_tuple(cc) >= compute_tuple(FP8_MIN_COMPUTE):
        return None
    where = "" if compute else f": TensorRT {target} is the JetPack 6 target (Orin)"
    return (
        f"FP8 needs compute capability >= {FP8_MIN_COMPUTE} (Ada, Hopper, Blackwell), the "
        f"target GPU has {cc}{where}; build --int8 or --fp16 for it, or target a datacenter GPU "
        "with --trt 10.16 or 11.x"
    )


def refuse_fp8(target: str, compute: str | None = None) -> None:
    why = fp8_refusal(target, compute)
    if why:
        raise UserError(f"--fp8: {why}")
