#!/usr/bin/env python3
"""Performance model of one talking-heads attention layer (fp16): the plugin-free graph, the old
CUDA-core kernel and the tensor-core kernel, on H200 and AGX Orin, at batch 1 and 32.

    python scripts/perf_model.py [--batches 1,32] [--markdown]

Inputs: FLOPs, bytes and exponentials of each implementation, the peaks below, and, for the two
kernels, the instructions per loop iteration read from their SASS (compiled here with nvcc for
sm_90 and sm_87, read with cuobjdump: tests/plugins/kernel_report.py). No GPU is needed; this is a
prediction, to be replaced by scripts/bench_attention_gpu.py's measurement wherever a GPU is at hand.

Assumptions (each one can be wrong; they are stated so that a measurement can refute them):
- Peaks: H200 (sm_90): 132 SMs at 1.98 GHz, fp16 tensor dense 990 TFLOP/s of which mma.sync
  reaches 65 %, HBM3e 4.8 TB/s, L2 50 MB at ~7 TB/s (about 1.5x HBM: Chips and Cheese measured
  5.5 TB/s on the H100 PCIe's 114 SMs), 227 KiB shared memory per block, 228 KiB per SM.
  AGX Orin (sm_87): 16 SMs at 1.3 GHz, fp16 tensor dense 42 TFLOP/s, 204.8 GB/s LPDDR5, L2 4 MB at
  ~2x DRAM, 163 KiB per block and 164 KiB per SM. Both: 4 warp instructions issued per clock per SM,
  16 MUFU (exp2) lanes per clock per SM, 128 bytes of shared memory per clock per SM.
- A kernel is as slow as its most loaded resource (issue slots, tensor cores, MUFU, shared memory,
  L2/DRAM), and reaches a fraction eta of that bound: eta = 0.5 for the fused kernels (the target
  they are held to: half of their own bound), 0.8 for the memory-bound kernels of the plugin-free
  graph.
- The plugin-free TensorRT graph runs 5 kernels per layer: QK^T (writes the H x N x N scores,
  fp16), the pre-mix (reads, writes), softmax (reads, writes), the post-mix (reads, writes) and P'V
  (reads): 16 bytes per score element; the head mixes are GEMMs over the head axis that TensorRT's
  attention fusion cannot absorb (the optimistic case of one fused mix-softmax-mix kernel, 8 bytes
  per element, is the "fused middle" column). PyTorch eager, as scripts/bench_attention_gpu.py
  writes it, adds the two bias additions, the q scaling, the copies that make K and V contiguous
  for the batched GEMMs and the output transpose: at least 11 kernels (a copy of q-scaled
  makes 12), 24 bytes per score element. Where one layer's score tensor fits in half of L2,
  the traffic runs at L2 bandwidth. Each kernel costs a launch gap of 1.5 us on H200 and 5 us on
  Orin (CUDA graphs).
- The old CUDA-core kernel is issue-bound: its phase-A score loop and its P'V loop (the loops with
  16 FFMA, one global load and 16 shared loads in the SASS) cost their measured instructions per
  16 rows x 32 keys (or channels) x 1 channel (or key); the head mixes add 2 x 256 predicated FFMA
  per (row, key) whatever H is; a streaming plan reads K twice (x1.5).
- The tensor-core kernel: per block of `rows` rows (the planner's plan), the SASS loop bodies
  executed per 32-key chunk by each of its H warps (one pass: the chunk loop, the post-mix loop of
  each mix-group slot, two iterations of the P'V loop; two passes: the pass-1 and pass-2 loops,
  the P'V loop nested in pass 2 once more); K and V read from L2 once (one pass) or K twice (two
  passes) per block, at the L2 bandwidth shared by the SMs that have a block (at most 64 bytes per
  clock per SM); blocks per SM from shared memory, threads and registers; waves of blocks. The
  instructions outside the mma loops (set-up, epilogue) count once per warp, less a tail twin of
  each loop (the last chunk's masked copy, counted as one of the chunks). A loop's cost is every
  instruction between its head and its back branch, cold paths included, so it is an upper bound
  (the loops over whole chunks have no key checks, hence few cold paths), and it moves with
  nvcc's code layout: an unrelated edit after a loop has shifted it by 20 %.
- Key splits (batch 1): the statistics and output kernels' loops (16- or 32-row tiles, as
  planned) per chunk of the block's key range, two launch gaps, waves of blocks as above.
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugins.emulation import PRESET_SHAPES  # noqa: E402

D = 48
GPUS = {
    "H200": dict(
        arch=90,
        sms=132,
        clock=1.98e9,
        tc=990e12,
        tc_eff=0.65,
        dram=4.8e12,
        l2=7.0e12,
        l2_size=50e6,
        smem_sm=228 * 1024,
        smem_block=227 * 1024,
        threads_sm=2048,
        launch=1.5e-6,
    ),
    "Orin": dict(
        arch=87,
        sms=16,
        clock=1.3e9,
        tc=42e12,
        tc_eff=0.65,
        dram=204.8e9,
        l2=409.6e9,
        l2_size=4e6,
        smem_sm=164 * 1024,
        smem_block=163 * 1024,
        threads_sm=1536,
        launch=5e-6,
    ),
}
ETA_FUSED, ETA_MEMORY = 0.5, 0.8
ISSUE, MUFU_LANES, SMEM_BYTES = 4, 16, 128  # per SM per clock


# ---- the plugin-free graph ---------------------------------------------------------------------


def unfused_time(gpu: dict, B: int, H: int, N: int, bytes_per_element: int, kernels: int) -> float:
    elements = B * H * N * N
    io = B * N * 4 * H * D * 2  # read q, k, v, write o
    fits_l2 = elements * 2 <= gpu["l2_size"] / 2
    bw = gpu["l2"] if fits_l2 else gpu["dram"]
    memory = (elements * bytes_per_element + io) / (bw * ETA_MEMORY)
    tensor = 4 * elements * D / (gpu["tc"] * gpu["tc_eff"])
    return max(memory, tensor) + kernels * gpu["launch"]


# ---- SASS loop costs ----------------------------------------------------------------------------


def sass_costs(compiled=None):
    """{("tc", H, T, one_pass, arch) | ("split", H, T, arch) | ("cuda", arch): cost dict} from the
    compiled kernels."""
    from tests.plugins import kernel_report as kr

    compiled = compiled or kr.compile_all(archs=(87, 90))
    regs = {(r["kernel"], r["arch"]): r["registers"] for c in compiled.values() for r in c.records}
    costs = {}
    funcs = compiled["talking_heads_tc"].functions() + compiled["talking_heads"].functions()
    for f in funcs:
        if f.arch not in (87, 90):
            continue
        label = kr.kernel_label(f.name)
        loops = []
        for first, last in f.loops():
            body = f.instrs[first : last + 1]
            loops.append(
                (
                    first,
                    last,
                    collections.Counter(i.family for i in body) + collections.Counter(n=len(body)),
                )
            )
        # Set-up and epilogue run once per warp: the instructions outside the mma loops, which are
        # counted per iteration below (small loops without mma count one iteration), less the
        # tail twin of each mma loop: the last chunk, when 32 does not divide N, runs a masked
        # copy of the loop body outside the loop (about as long), and it is counted as one of
        # the block's chunks, not once more.
        mma = [(a, b) for a, b, c in loops if c["HMMA"]]
        outermost = [
            (a, b)
            for a, b in mma
            if not any(c <= a and b <= d and (c, d) != (a, b) for c, d in mma)
        ]
        once = len(f.instrs) - 2 * sum(b - a + 1 for a, b in outermost)
        if label.startswith("tensor core") and "split" in label:
            H, T = (int(x) for x in re.findall(r"[HT]=(\d+)", label))
            work = [lp for lp in loops if lp[2]["HMMA"]]
            outer = max(work, key=lambda lp: lp[2]["n"])
            inner = [c for a, b, c in work if outer[0] < a and b <= outer[1]]
            part = "stats" if "stats" in label else "output"
            entry = costs.setdefault(("split", H, T, f.arch), {})
            entry[part] = dict(loop=outer[2], inner=inner, once=once)
            entry["regs"] = max(entry.get("regs", 0), regs[f.name, f.arch])
            continue
        if label.startswith("tensor core"):
            H, T = (int(x) for x in re.findall(r"[HT]=(\d+)", label))
            one = "1-pass" in label
            work = [lp for lp in loops if lp[2]["HMMA"]]
            bar = sorted((lp for lp in work if lp[2]["BAR"]), key=lambda lp: lp[0])
            if one:
                cost = dict(
                    chunk=bar[0][2],
                    post=[c for a, b, c in work if c["MUFU"] and not c["BAR"]],
                    pv=[c for a, b, c in work if c["LDG"] and not c["MUFU"] and not c["BAR"]],
                )
            else:
                p1, p2 = bar[0], bar[1]
                inner = [c for a, b, c in work if p2[0] < a and b <= p2[1]]
                cost = dict(pass1=p1[2], pass2=p2[2], inner=inner)
            cost["regs"] = regs[f.name, f.arch]
            cost["once"] = once
            costs["tc", H, T, one, f.arch] = cost
        elif label == "full-row fp16":
            inner = [
                c
                for a, b, c in loops
                if c["FFMA"] == 16 and c["LDG"] == 1 and c["LDS"] == 16 and not c["STS"]
            ]
            costs["cuda", f.arch] = dict(score=inner[0]["n"], pv=inner[-1]["n"])
    return costs


# ---- the kernels ---------------------------------------------------------------------------------


def cuda_core_time(gpu: dict, cost: dict, B: int, H: int, N: int, streaming: bool) -> float:
    # warp instructions per (row, key, head): score loop per 16 rows x 32 keys x 1 channel, P'V loop
    # per 16 rows x 32 channels x 1 key, mixes 2 x 256 predicated FFMA per (row, key) / 32 lanes.
    per = (
        D * cost["score"] / 512 * (1.5 if streaming else 1.0)
        + D * cost["pv"] / 512
        + 2 * 256 / 32 / H
    )
    clocks = B * H * N * N * per / (ISSUE * gpu["sms"])
    return clocks / gpu["clock"] / ETA_FUSED + gpu["launch"]


def tc_block(gpu: dict, cost: dict, H: int, N: int, rows: int, one_pass: bool, active_sms: int):
    """Clocks of one block on one SM, and the resource that bounds it."""
    warps = H
    chunks = math.ceil(N / 32)
    counts = collections.Counter()

    def add(loop, times):
        counts.update({k: v * times for k, v in loop.items()})

    if one_pass:
        add(cost["chunk"], warps * chunks)
        for loop in cost["post"]:  # one loop per mix-group slot, once per chunk
            add(loop, warps * chunks)
        for loop in cost["pv"]:  # 16 keys per iteration
            add(loop, warps * chunks * 2)
    else:
        add(cost["pass1"], warps * chunks)
        add(cost["pass2"], warps * chunks)  # holds one iteration of its inner P'V loop
        for loop in cost["inner"]:
            add(loop, warps * chunks)  # the second 16-key iteration
    counts["n"] += cost["once"] * warps  # set-up and epilogue
    kv = (2 if one_pass else 3) * N * H * D * 2 + 2 * rows * H * D * 2
    smem = (counts["LDS"] + counts["STS"]) * 128 + counts["LDSM"] * 512
    hmma_clk = 4096 / (gpu["tc"] * gpu["tc_eff"] / (gpu["sms"] * gpu["clock"]))
    l2_per_sm_clk = min(64.0, gpu["l2"] / (active_sms * gpu["clock"]))
    bounds = {
        "issue": counts["n"] / ISSUE,
        "tensor": counts["HMMA"] * hmma_clk,
        "exp": counts["MUFU"] * 32 / MUFU_LANES,
        "smem": smem / SMEM_BYTES,
        "L2": kv / l2_per_sm_clk,
    }
    name = max(bounds, key=bounds.get)
    return bounds[name], name


def split_time(gpu: dict, costs: dict, plan, B: int, H: int, N: int):
    """Key splits: blocks of 16 or 32 rows x N / splits keys, the two passes in two launches (the
    statistics launch also zeroes the fp32 output, the last split of a tile rounds it to fp16)."""
    _, rows, _, smem, threads, splits, _ = plan
    cost = costs["split", H, 2 if rows > 16 else 1, gpu["arch"]]
    chunks = math.ceil(math.ceil(N / 32) / splits)
    counts = collections.Counter()
    for part in ("stats", "output"):
        counts.update({k: v * H * chunks for k, v in cost[part]["loop"].items()})
        for loop in cost[part]["inner"]:
            counts.update({k: v * H * chunks for k, v in loop.items()})  # P'V's second iteration
        counts["n"] += cost[part]["once"] * H
    blocks = B * math.ceil(N / rows) * splits
    active = min(gpu["sms"], blocks)
    kv = 3 * (N / splits) * H * D * 2 + 2 * rows * H * D * 2 + rows * H * D * 4
    smem_bytes = (counts["LDS"] + counts["STS"]) * 128 + counts["LDSM"] * 512
    hmma_clk = 4096 / (gpu["tc"] * gpu["tc_eff"] / (gpu["sms"] * gpu["clock"]))
    bounds = {"issue": counts["n"] / ISSUE, "tensor": counts["HMMA"] * hmma_clk,
              "exp": counts["MUFU"] * 32 / MUFU_LANES, "smem": smem_bytes / SMEM_BYTES,
              "L2": kv / min(64.0, gpu["l2"] / (active * gpu["clock"]))}  # fmt: skip
    name = max(bounds, key=bounds.get)
    per_sm = min(gpu["smem_sm"] // (smem + 1024), gpu["threads_sm"] // threads,
                 65536 // (math.ceil(cost["regs"] * 32 / 256) * 256 * (threads // 32)))  # fmt: skip
    waves = math.ceil(blocks / (gpu["sms"] * per_sm))
    resident = min(per_sm, math.ceil(blocks / gpu["sms"]))
    clocks = waves * resident * bounds[name]
    return clocks / gpu["clock"] / ETA_FUSED + 2 * gpu["launch"], name


def tc_time(gpu: dict, costs: dict, plan, B: int, H: int, N: int):
    from tests.plugins.emulation import TC_ONE_PASS, TC_SPLIT

    if plan[0] == TC_SPLIT:
        return split_time(gpu, costs, plan, B, H, N)
    variant, rows, _, smem, threads = plan[:5]
    one = variant == TC_ONE_PASS
    cost = costs["tc", H, 2 if rows > 16 else 1, one, gpu["arch"]]
    per_sm = min(
        gpu["smem_sm"] // (smem + 1024),
        gpu["threads_sm"] // threads,
        65536 // (math.ceil(cost["regs"] * 32 / 256) * 256 * (threads // 32)),
    )
    blocks = B * math.ceil(N / rows)
    waves = math.ceil(blocks / (gpu["sms"] * per_sm))
    resident = min(per_sm, math.ceil(blocks / gpu["sms"]))
    clocks, bound = tc_block(gpu, cost, H, N, rows, one, min(gpu["sms"], blocks))
    return waves * resident * clocks / gpu["clock"] / ETA_FUSED + gpu["launch"], bound


def table(batches=(1, 32), markdown: bool = True, compiled=None) -> str:
    """The prediction table; `compiled`: kernel_report.compile_all() output to reuse."""
    from tests.plugins import emulation

    costs = sass_costs(compiled)
    lib = emulation.build_emulation()
    head = (
        "| GPU | preset | B | plugin-free TRT (5 kernels) | fused middle (3) | PyTorch eager (11) | old CUDA-core kernel "
        "| tensor-core kernel (plan, bound) | vs plugin-free | vs eager | vs old |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for gname, gpu in GPUS.items():
        for name, H, N in PRESET_SHAPES:
            for B in batches:
                trt = unfused_time(gpu, B, H, N, 16, 5)
                mid = unfused_time(gpu, B, H, N, 8, 3)
                eager = unfused_time(gpu, B, H, N, 24, 11)
                old_plan = emulation.plan(
                    lib,
                    B,
                    H,
                    N,
                    D,
                    fp16=False,
                    smem=gpu["smem_block"],
                    sm_count=gpu["sms"],
                    sm_version=gpu["arch"],
                )
                old = cuda_core_time(
                    gpu, costs["cuda", gpu["arch"]], B, H, N, old_plan[0] == emulation.STREAMING
                )
                device = dict(smem=gpu["smem_block"], sm_count=gpu["sms"], sm_version=gpu["arch"])
                ws = lib.cait_talking_heads_workspace(B, H, N, D, *device.values())
                plan = emulation.plan(lib, B, H, N, D, **device, workspace=ws)
                new, bound = tc_time(gpu, costs, plan, B, H, N)
                kind = {emulation.TC_ONE_PASS: "1-pass", emulation.TC_TWO_PASS: "2-pass"}.get(
                    plan[0], f"split x{plan[5]}"
                )
                tag = f"{kind} r{plan[1]}, {bound}"
                us = lambda t: f"{t * 1e6:,.0f}"  # noqa: E731
                lines.append(
                    f"| {gname} | {name} | {B} | {us(trt)} | {us(mid)} | {us(eager)} | {us(old)} "
                    f"| {us(new)} ({tag}) | {trt / new:.1f}x | {eager / new:.1f}x | {old / new:.0f}x |"
                )
    out = "\n".join(lines)
    return out if markdown else out.replace("|---", "").replace("---:", "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown (README)")
    args = ap.parse_args(argv)
    print("predicted microseconds per talking-heads layer (fp16; a model, not a measurement)\n")
    print(table([int(b) for b in args.batches.split(",")], args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
