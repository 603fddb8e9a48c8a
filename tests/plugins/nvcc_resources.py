"""Compile the plugin kernels with nvcc for every default architecture and read ptxas' report.

    python -m tests.plugins.nvcc_resources     # prints the markdown table of plugins/README.md
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHS = (75, 80, 86, 87, 89, 90)
KERNEL_FILES = {
    "talking_heads": ROOT / "plugins/talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.cu",
    "class_attention": ROOT / "plugins/classAttentionPlugin/classAttentionKernel.cu",
}
THREADS = {"talking_heads": 256, "class_attention": 256}
# Per SM: register file, max resident threads, shared memory (bytes); per block: opt-in smem.
SM = {
    75: dict(regs=65536, threads=1024, smem_sm=64 * 1024, smem_block=64 * 1024),
    80: dict(regs=65536, threads=2048, smem_sm=164 * 1024, smem_block=163 * 1024),
    86: dict(regs=65536, threads=1536, smem_sm=100 * 1024, smem_block=99 * 1024),
    87: dict(regs=65536, threads=1536, smem_sm=164 * 1024, smem_block=163 * 1024),
    89: dict(regs=65536, threads=1536, smem_sm=100 * 1024, smem_block=99 * 1024),
    90: dict(regs=65536, threads=2048, smem_sm=228 * 1024, smem_block=227 * 1024),
}

_ENTRY = re.compile(r"Compiling entry function '(\w+)' for 'sm_(\d+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def nvcc_command(cu: Path, out: Path) -> list[str]:
    cmd = ["nvcc", "-std=c++17", "-O3", f"-I{ROOT / 'plugins'}", "-c", str(cu), "-o", str(out),
           "-Xptxas", "-v,-warn-spills"]
    for a in ARCHS:
        cmd += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    return cmd


def parse_ptxas(log: str) -> list[dict]:
    """One record per (entry function, architecture), in the order ptxas reports them."""
    records, cur = [], None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            cur = dict(kernel=m.group(1), arch=int(m.group(2)), stack=0, spill_stores=0, spill_loads=0,
                       registers=None, smem_static=0)
            records.append(cur)
        elif cur is not None and (m := _SPILL.search(line)):
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        elif cur is not None and (m := _USED.search(line)):
            cur["registers"] = int(m.group(1))
            cur["smem_static"] = int(m.group(2) or 0)
    return records


def compile_all() -> dict[str, tuple[list[dict], str]]:
    """{kernel file key: (records, raw log)}; the two nvcc runs go in parallel (one per core)."""
    if shutil.which("nvcc") is None:
        raise FileNotFoundError("nvcc not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        def run(item):
            key, cu = item
            proc = subprocess.run(nvcc_command(cu, Path(tmp) / f"{key}.o"), capture_output=True, text=True)
            log = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise RuntimeError(f"nvcc failed on {cu}:\n{log}")
            return key, (parse_ptxas(log), log)
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(pool.map(run, KERNEL_FILES.items()))


def blocks_per_sm_by_registers(registers: int, threads: int, arch: int) -> int:
    per_warp = -(-registers * 32 // 256) * 256  # allocation unit: 256 registers per warp
    return SM[arch]["regs"] // (per_warp * (threads // 32))


def blocks_per_sm(registers: int, threads: int, arch: int) -> int:
    """Resident blocks per SM allowed by registers and by the thread limit (shared memory aside)."""
    return min(blocks_per_sm_by_registers(registers, threads, arch), SM[arch]["threads"] // threads)


def talking_heads_smem(rows: int, heads: int, tokens: int, head_size: int) -> int:
    """Mirror of talkingHeadsSmemBytes (the emulation test checks the two agree)."""
    return 4 * (rows * heads * tokens + rows * head_size + 2 * (heads * heads + heads))


def talking_heads_rows(heads: int, tokens: int, head_size: int, max_smem: int) -> int:
    rows = min(16, tokens)
    while rows > 0 and talking_heads_smem(rows, heads, tokens, head_size) > max_smem:
        rows -= 1
    return rows


def streaming_smem(rows: int, chunk: int, heads: int, head_size: int) -> int:
    """Mirror of talkingHeadsStreamingSmemBytes."""
    return 4 * (rows * heads * head_size + rows * heads * chunk + 2 * rows * heads + 2 * (heads * heads + heads))


def talking_heads_plan(heads: int, tokens: int, head_size: int, max_smem: int):
    """Mirror of talkingHeadsPlan(kAuto): (variant "full-row"|"streaming", rows, chunk, smem bytes)."""
    full_rows = talking_heads_rows(heads, tokens, head_size, max_smem)
    full = ("full-row", full_rows, 0, talking_heads_smem(full_rows, heads, tokens, head_size) if full_rows else 0)
    stream = ("streaming", 0, 0, 0)
    if heads * head_size <= 768:
        for rows in range(min(16, tokens), 0, -1):
            fits = [c for c in (64, 32, 16, 8) if streaming_smem(rows, c, heads, head_size) <= max_smem]
            if fits:
                stream = ("streaming", rows, fits[0], streaming_smem(rows, fits[0], heads, head_size))
                break
    if full_rows >= 11 or full_rows == tokens or stream[1] == 0:
        return full
    return stream


def l2_bytes(heads: int, tokens: int, channels: int, elem: int, plan) -> int:
    """Bytes the kernel requests from L2/DRAM per image: Q and O once, K and V once per full-row
    tile, K twice and V once per streaming tile."""
    variant, rows, _, _ = plan
    tiles = -(-tokens // rows)
    kv_reads = 2 if variant == "full-row" else 3
    return (2 + kv_reads * tiles) * tokens * channels * elem


PRESETS = [("xxs 224", 4, 196), ("xxs 384", 4, 576), ("xs 384", 6, 576), ("s 224", 8, 196),
           ("s_36 384", 8, 576), ("m 384", 16, 576), ("m_48 448", 16, 784)]


def preset_table() -> str:
    """The plan of the talking-heads launcher per preset and architecture (head size 48)."""
    rows = ["| preset | H | N | " + " | ".join(f"sm_{a}" for a in ARCHS) + " |",
            "|---|---|---|" + "---|" * len(ARCHS)]
    for name, H, N in PRESETS:
        cells = []
        for a in ARCHS:
            variant, r, chunk, smem = talking_heads_plan(H, N, 48, SM[a]["smem_block"])
            reserved = 0 if a == 75 else 1024  # the driver keeps 1 KiB per block from sm_80 on
            blocks = SM[a]["smem_sm"] // (smem + reserved)
            tag = f"F r{r}" if variant == "full-row" else f"S r{r} k{chunk}"
            cells.append(f"{tag}, {smem / 1024:.0f} KiB, {blocks} blk/SM")
        rows.append(f"| {name} | {H} | {N} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def bytes_table(arch: int = 87) -> str:
    """Bytes per image moved by the talking-heads kernel vs the analytic minimum (fp16)."""
    out = [f"| preset | H | N | C | plan on sm_{arch} | minimum (read qkv, write O) | requested from L2 | ratio "
           "| unfused H·N² score tensor (one copy) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, H, N in PRESETS:
        C = 48 * H
        plan = talking_heads_plan(H, N, 48, SM[arch]["smem_block"])
        minimum = 4 * N * C * 2
        got = l2_bytes(H, N, C, 2, plan)
        tag = f"full-row, {plan[1]} rows" if plan[0] == "full-row" else f"streaming, {plan[1]} rows, {plan[2]} keys"
        out.append(f"| {name} | {H} | {N} | {C} | {tag} | {minimum / 1e6:.2f} MB | {got / 1e6:.1f} MB "
                   f"| {got / minimum:.1f}x | {H * N * N * 2 / 1e6:.2f} MB |")
    return "\n".join(out)


def markdown_table(results) -> str:
    rows = ["| kernel | dtype | arch | registers | spill (st/ld B) | stack B | blocks/SM by registers "
            "and threads (256 thr/block) | max threads/SM | smem/block opt-in |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, (records, _) in results.items():
        for r in sorted(records, key=lambda r: ("Streaming" in r["kernel"], r["arch"], "half" in r["kernel"])):
            dtype = "fp16" if "half" in r["kernel"] else "fp32"
            arch = r["arch"]
            kernel = key + (" (streaming)" if "Streaming" in r["kernel"] else
                            " (full-row)" if key == "talking_heads" else "")
            rows.append(f"| {kernel} | {dtype} | sm_{arch} | {r['registers']} | {r['spill_stores']}/{r['spill_loads']} "
                        f"| {r['stack']} | {blocks_per_sm(r['registers'], THREADS[key], arch)} "
                        f"| {SM[arch]['threads']} | {SM[arch]['smem_block'] // 1024} KiB |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table(compile_all()))
    print()
    print(preset_table())
    print()
    print(bytes_table())
