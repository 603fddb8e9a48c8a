#!/usr/bin/env python3
"""Accuracy of the tensor-core talking-heads kernel against the plugin-free fp16 graph it replaces.

    python scripts/kernel_accuracy.py        # the table of the plugin README's "Accuracy" section

Per preset attention shape, batch 1, two inputs (N(0,1), and 4 N(0,1) whose scores reach about
+-40, where fp16 exp() overflows): max |out - ref| / max |ref| against the float64 NumPy
reference, for
- the kernel run through the host emulation (the same source nvcc compiles) in each variant at
  its H200 plan: one pass and two passes at the row tile the planner gives them at batch 32, key
  splits as the batch-1 plan splits the shape (rows and splits);
- the plugin-free graph simulated in NumPy as TensorRT's fp16 kernels run it: fp32 sums, every
  intermediate stored in fp16 (S, S', P, P', the output).
Needs nvcc's headers for the emulation build (like the tests), no GPU. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugins import emulation, reference  # noqa: E402

D = 48
INPUTS = [(1.0, "N(0,1)"), (4.0, "4·N(0,1), scores ≈ ±40")]


def fp16_graph(qkv, H, scale, w1, b1, w2, b2):
    """The unfused graph with fp16 tensors between its kernels and fp32 arithmetic inside them."""
    f16 = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    B, N, _ = qkv.shape
    x = qkv.astype(np.float32).reshape(B, N, 3, H, D).transpose(2, 0, 3, 1, 4)
    q, k, v = x[0], x[1], x[2]
    s = f16(scale * np.einsum("bhid,bhjd->bhij", q, k))
    s = f16(np.einsum("oh,bhij->boij", w1.reshape(H, H), s) + b1[None, :, None, None])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = f16(e / e.sum(axis=-1, keepdims=True))
    p = f16(np.einsum("oh,bhij->boij", w2.reshape(H, H), p) + b2[None, :, None, None])
    o = f16(np.einsum("bhij,bhjd->bhid", p, v))
    return o.transpose(0, 2, 1, 3).reshape(B, N, H * D)


def plans(lib, H, N):
    """{column: launch kwargs} of the H200 plans."""
    dev = emulation.H200
    ws = lib.cait_talking_heads_workspace(
        1, H, N, D, dev["smem"], dev["sm_count"], dev["sm_version"]
    )
    split = emulation.plan(lib, 1, H, N, D, **dev, workspace=ws)
    assert split[0] == emulation.TC_SPLIT, (H, N, split)
    out = {}
    for name, variant in (("1-pass", emulation.TC_ONE_PASS), ("2-pass", emulation.TC_TWO_PASS)):
        out[name] = dict(
            variant=variant, rows=emulation.plan(lib, 32, H, N, D, **dev, variant=variant)[1]
        )
    out["split"] = dict(
        variant=emulation.TC_SPLIT,
        rows=split[1],
        splits=split[5],
        workspace=np.full(max(ws // 4, 1), np.nan, np.float32),
    )
    return out


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    lib = emulation.build_emulation()
    print(
        "| preset shape | inputs | tensor core 1-pass | tensor core 2-pass | key splits | plugin-free fp16 graph |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, H, N in emulation.PRESET_SHAPES:
        launches = plans(lib, H, N)
        split = launches["split"]
        for i, (amp, label) in enumerate(INPUTS):
            rng = np.random.default_rng(1000 * H + N + i)
            qkv = (amp * rng.standard_normal((1, N, 3 * H * D))).astype(np.float16)
            mix = emulation.mixing(rng, H)
            scale = np.float32(D**-0.5)
            ref = reference.talking_heads(qkv, H, scale, *mix)
            cells = []
            for column, launch in launches.items():
                out = emulation.run_talking_heads(lib, qkv, H, scale, mix, **launch)
                plan = f" (r{split['rows']} x{split['splits']})" if column == "split" else ""
                cells.append(f"{emulation.rel_err(out, ref):.1e}{plan}")
            cells.append(f"{emulation.rel_err(fp16_graph(qkv, H, scale, *mix), ref):.1e}")
            print(f"| {name} (H={H}, N={N}) | {label} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
