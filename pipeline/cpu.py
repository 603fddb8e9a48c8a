"""CPU threading defaults for Paddle, applied before Paddle (and its MKL) is first imported.

Measured here (cait_s_36_384 at depth 6, batch 2, 2 cores): Paddle's dygraph runs on one OpenMP
thread unless told otherwise (1.98 s); OMP_NUM_THREADS = cores gives 1.40 s. Paddle bundles an
MKL that takes a generic code path on AMD CPUs; MKL_DEBUG_CPU_TYPE=5 selects its AVX2 kernels
(1.45 s alone, 0.94 s with both). That variable would *downgrade* an AVX-512 Intel CPU, so it is
set on AMD only. Both are defaults: a value the user exported wins. ONNX Runtime has its own
thread pool and is unaffected.
"""

from __future__ import annotations

import os


def _is_amd() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "AuthenticAMD" in f.read(4096)
    except OSError:
        return False


def apply_cpu_defaults() -> None:
    os.environ.setdefault(
        "OMP_NUM_THREADS",
        str(
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        ),
    )
    if _is_amd():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
