"""What the compiler made of the plugin kernels, and what the launcher plans per preset and GPU.

    python -m tests.plugins.kernel_report            # print every table
    python -m tests.plugins.kernel_report --write    # regenerate the tables in the plugin READMEs

Sources: ptxas' resource report (registers, spills) for every default architecture; the SASS
(cuobjdump -sass, from PATH or the PyPI wheels nvidia-cuda-cuobjdump + nvidia-cuda-nvdisasm):
instruction mix of every kernel and the instructions of each loop; the launcher's own planner,
called through the emulation build of the C ABI (no second copy of the planning rules).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import emulation

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "kernel-report"
ARCHS = (75, 80, 86, 87, 89, 90)
KERNEL_FILES = {
    "talking_heads": ROOT / "plugins/talkingHeadsAttentionPlugin/talkingHeadsAttentionKernel.cu",
    "talking_heads_tc": ROOT / "plugins/talkingHeadsAttentionPlugin/talkingHeadsTensorCore.cu",
    "class_attention": ROOT / "plugins/classAttentionPlugin/classAttentionKernel.cu",
}
README = {
    "talking_heads": ROOT / "plugins/talkingHeadsAttentionPlugin/README.md",
    "class_attention": ROOT / "plugins/classAttentionPlugin/README.md",
}
# Per SM: register file, max resident threads, shared memory (bytes); per block: opt-in smem.
SM = {
    75: dict(regs=65536, threads=1024, smem_sm=64 * 1024, smem_block=64 * 1024, sms=40),
    80: dict(regs=65536, threads=2048, smem_sm=164 * 1024, smem_block=163 * 1024, sms=108),
    86: dict(regs=65536, threads=1536, smem_sm=100 * 1024, smem_block=99 * 1024, sms=84),
    87: dict(regs=65536, threads=1536, smem_sm=164 * 1024, smem_block=163 * 1024, sms=16),
    89: dict(regs=65536, threads=1536, smem_sm=100 * 1024, smem_block=99 * 1024, sms=58),
    90: dict(regs=65536, threads=2048, smem_sm=228 * 1024, smem_block=227 * 1024, sms=132),
}
GPU_NAMES = {75: "T4", 80: "A100", 86: "A10", 87: "AGX Orin", 89: "L4", 90: "H200"}
# SASS opcode families reported in the instruction-mix table.
MIX = (
    "HMMA",
    "LDSM",
    "MUFU",
    "FFMA",
    "FMUL",
    "FADD",
    "F2FP",
    "LDG",
    "LDS",
    "STS",
    "STG",
    "SHFL",
    "BAR",
)

_ENTRY = re.compile(r"Compiling entry function '(\w+)' for 'sm_(\d+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


# ---- compiling ----------------------------------------------------------------------------------


@dataclass
class Compiled:
    records: list[dict]
    log: str
    obj: Path
    objs: list[Path] = field(default_factory=list)

    def functions(self) -> list[Function]:
        return [f for o in self.objs for f in sass(o)]


def nvcc_version() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else "unknown"


def parse_ptxas(log: str) -> list[dict]:
    """One record per (entry function, architecture), in the order ptxas reports them."""
    records, cur = [], None
    for line in log.splitlines():
        if m := _ENTRY.search(line):
            cur = dict(
                kernel=m.group(1),
                arch=int(m.group(2)),
                stack=0,
                spill_stores=0,
                spill_loads=0,
                registers=None,
                static_smem=0,
            )
            records.append(cur)
        elif cur is not None and (m := _SPILL.search(line)):
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        elif cur is not None and (m := _USED.search(line)):
            cur["registers"] = int(m.group(1))
            if s := _SMEM.search(line):
                cur["static_smem"] = int(s.group(1))
    return records


# The tensor-core kernels are compiled out below sm_80, and their file takes most of the compile
# time: it is split over two nvcc jobs by architecture so that both cores work.
TC_ARCH_GROUPS = ((80, 86, 87), (89, 90))


def _nvcc(cu: Path, obj: Path, archs) -> tuple[list[dict], str]:
    cmd = [
        "nvcc",
        "-std=c++17",
        "-O3",
        f"-I{ROOT / 'plugins'}",
        "-c",
        str(cu),
        "-o",
        str(obj),
        "-Xptxas",
        "-v,-warn-spills",
    ]
    for a in archs:
        cmd += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed on {cu}:\n{log}")
    return parse_ptxas(log), log


def compile_all(archs=ARCHS) -> dict[str, Compiled]:
    """{kernel file key: Compiled}; nvcc jobs two at a time (one per core). The tensor-core file's
    objects are one per architecture group (`Compiled.obj` is the first, `objs` all of them)."""
    if shutil.which("nvcc") is None:
        raise FileNotFoundError("nvcc not on PATH")
    BUILD.mkdir(parents=True, exist_ok=True)
    jobs = []
    for key, cu in KERNEL_FILES.items():
        if key == "talking_heads_tc":
            for n, group in enumerate(TC_ARCH_GROUPS):
                sel = [a for a in group if a in archs]
                if sel:
                    jobs.append((key, cu, BUILD / f"{key}_{n}.o", sel))
        else:
            jobs.append((key, cu, BUILD / f"{key}.o", list(archs)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda j: (j, _nvcc(j[1], j[2], j[3])), jobs))
    out: dict[str, Compiled] = {}
    for (key, _, obj, _), (records, log) in results:
        if key in out:
            out[key].records += records
            out[key].log += log
            out[key].objs.append(obj)
        else:
            out[key] = Compiled(records, log, obj, [obj])
    return out


# ---- SASS ----------------------------------------------------------------------------------------


def find_cuobjdump() -> tuple[str, dict] | None:
    """(cuobjdump path, environment with nvdisasm on PATH), from PATH or the PyPI wheels."""
    env = dict(os.environ)
    exe = shutil.which("cuobjdump")
    if exe is None:
        spec = importlib.util.find_spec("nvidia")
        for base in (spec.submodule_search_locations or []) if spec else []:
            hits = sorted(Path(base).glob("*/bin/cuobjdump"))
            if hits:
                exe = str(hits[-1])
                env["PATH"] = str(hits[-1].parent) + os.pathsep + env.get("PATH", "")
                break
    return (exe, env) if exe else None


@dataclass
class Instr:
    addr: int
    op: str
    operands: str

    @property
    def family(self) -> str:
        return self.op.split(".")[0]


@dataclass
class Function:
    name: str
    arch: int
    instrs: list[Instr] = field(default_factory=list)

    def mix(self) -> collections.Counter:
        return collections.Counter(i.family for i in self.instrs)

    def loops(self) -> list[tuple[int, int]]:
        """(first, last) instruction indices of every loop: a branch back to an earlier address.
        Branches from out-of-line code placed after an EXIT (convergence fix-ups of shuffles) jump
        back too; a range that contains an EXIT is not a loop."""
        index = {i.addr: n for n, i in enumerate(self.instrs)}
        out = []
        for n, i in enumerate(self.instrs):
            if i.family == "BRA" and (m := re.search(r"0x([0-9a-f]+)", i.operands)):
                target = int(m.group(1), 16)
                if target < i.addr and target in index:
                    first = index[target]
                    if not any(x.family == "EXIT" for x in self.instrs[first:n]):
                        out.append((first, n))
        return out


_SASS_CACHE: dict[tuple[Path, float], list] = {}


def sass(obj: Path) -> list[Function]:
    """The functions of an object file (cached per path and modification time)."""
    key = (obj, obj.stat().st_mtime)
    if key not in _SASS_CACHE:
        _SASS_CACHE[key] = _sass(obj)
    return _SASS_CACHE[key]


def _sass(obj: Path) -> list[Function]:
    tool = find_cuobjdump()
    if tool is None:
        raise FileNotFoundError(
            "cuobjdump not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm"
        )
    exe, env = tool
    proc = subprocess.run([exe, "-sass", str(obj)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"cuobjdump failed on {obj}:\n{proc.stderr}")
    funcs, arch, cur = [], None, None
    for line in proc.stdout.splitlines():
        if m := re.match(r"\s*arch = sm_(\d+)", line):
            arch = int(m.group(1))
        elif m := re.match(r"\s*Function : (\S+)", line):
            cur = Function(m.group(1), arch)
            funcs.append(cur)
        elif cur is not None and (m := _INSTR.search(line)):
            cur.instrs.append(Instr(int(m.group(1), 16), m.group(3), m.group(4)))
    return funcs


def kernel_label(mangled: str) -> str:
    if m := re.search(r"talkingHeadsTensorCoreKernelILi(\d+)ELi(\d)ELNS0_6TcModeE(\d)E", mangled):
        mode = ("1-pass", "2-pass", "split stats", "split output")[int(m.group(3))]
        return f"tensor core H={m.group(1)} T={m.group(2)} {mode}"
    dtype = "fp16" if "6__half" in mangled else "fp32"
    if "talkingHeadsStreamingKernel" in mangled:
        return f"streaming {dtype}"
    if "talkingHeadsKernel" in mangled:
        return f"full-row {dtype}"
    if "classAttentionKernel" in mangled:
        return f"class attention {dtype}"
    return mangled


# ---- occupancy ---------------------------------------------------------------------------------


def threads_of(key: str, label: str) -> int:
    if m := re.search(r"H=(\d+)", label):
        return 32 * int(m.group(1))  # one warp per head
    return 256


def blocks_per_sm_by_registers(registers: int, threads: int, arch: int) -> int:
    per_warp = -(-registers * 32 // 256) * 256  # allocation unit: 256 registers per warp
    return SM[arch]["regs"] // (per_warp * (threads // 32))


# ---- plans (through the emulation build of the launcher) ---------------------------------------


def plans(batch: int) -> dict[tuple[str, int], tuple]:
    """The launcher's plan per preset and architecture, offered the workspace a plugin asks for."""
    lib = emulation.build_emulation()
    out = {}
    for name, H, N in emulation.PRESET_SHAPES:
        for a in ARCHS:
            device = dict(smem=SM[a]["smem_block"], sm_count=SM[a]["sms"], sm_version=a)
            ws = lib.cait_talking_heads_workspace(batch, H, N, 48, *device.values())
            out[name, a] = emulation.plan(lib, batch, H, N, 48, **device, workspace=ws)
    return out


def _plan_cell(p, arch: int) -> str:
    variant, rows, chunk, smem, _, splits, _ = p
    tag = {
        emulation.FULL_ROW: f"F r{rows}",
        emulation.STREAMING: f"S r{rows} k{chunk}",
        emulation.TC_ONE_PASS: f"TC1 r{rows}",
        emulation.TC_TWO_PASS: f"TC2 r{rows}",
        emulation.TC_SPLIT: f"TC2 r{rows} x{splits} key splits",
    }[variant]
    reserved = 0 if arch == 75 else 1024  # the driver keeps 1 KiB per block from sm_80 on
    return f"{tag}, {smem / 1024:.0f} KiB, {SM[arch]['smem_sm'] // (smem + reserved)} blk/SM"


# ---- tables ------------------------------------------------------------------------------------


def plan_table() -> str:
    head = "| preset | H | N | " + " | ".join(f"sm_{a} ({GPU_NAMES[a]})" for a in ARCHS) + " |"
    rows = [head, "|---|---|---|" + "---|" * len(ARCHS)]
    b32, b1 = plans(32), plans(1)
    for name, H, N in emulation.PRESET_SHAPES:
        cells = []
        for a in ARCHS:
            cell = _plan_cell(b32[name, a], a)
            if b1[name, a][:2] != b32[name, a][:2] or b1[name, a][5] != b32[name, a][5]:
                cell += "; B=1: " + _plan_cell(b1[name, a], a).split(",")[0]
            cells.append(cell)
        rows.append(f"| {name} | {H} | {N} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def resources_table(compiled: dict[str, Compiled], keys) -> str:
    rows = [
        "| kernel | arch | registers | spill (st/ld B) | stack B | threads/block | blocks/SM by registers |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        for r in sorted(
            compiled[key].records, key=lambda r: (kernel_label(r["kernel"]), r["arch"])
        ):
            label = kernel_label(r["kernel"])
            if key == "talking_heads_tc" and r["arch"] < 80:
                continue  # compiled out below sm_80: the CUDA-core kernels run there
            threads = threads_of(key, label)
            rows.append(
                f"| {label} | sm_{r['arch']} | {r['registers']} | {r['spill_stores']}/{r['spill_loads']} "
                f"| {r['stack']} | {threads} | {blocks_per_sm_by_registers(r['registers'], threads, r['arch'])} |"
            )
    return "\n".join(rows)


def mix_table(funcs: list[Function], archs=(87, 90)) -> str:
    rows = [
        "| kernel | arch | instructions | " + " | ".join(MIX) + " |",
        "|---|---|---:|" + "---:|" * len(MIX),
    ]
    for f in sorted(
        (f for f in funcs if f.arch in archs), key=lambda f: (kernel_label(f.name), f.arch)
    ):
        m = f.mix()
        rows.append(
            f"| {kernel_label(f.name)} | sm_{f.arch} | {len(f.instrs)} | "
            + " | ".join(str(m.get(k, 0)) for k in MIX)
            + " |"
        )
    return "\n".join(rows)


def loop_table(funcs: list[Function], archs=(87, 90)) -> str:
    """Every loop of the tensor-core kernels that computes (has HMMA): its instructions per iteration
    and their kinds. A loop nested in another (two passes: P'V inside pass 2) is listed on its own
    and counted in the outer one once."""
    kinds = ("HMMA", "LDSM", "MUFU", "LDG", "LDS", "STS", "SHFL", "F2FP", "FFMA")
    rows = [
        "| kernel | arch | loop (SASS offsets) | instructions | " + " | ".join(kinds) + " |",
        "|---|---|---|---:|" + "---:|" * len(kinds),
    ]
    for f in sorted(
        (f for f in funcs if f.arch in archs and "TensorCore" in f.name),
        key=lambda f: (kernel_label(f.name), f.arch),
    ):
        for first, last in f.loops():
            body = f.instrs[first : last + 1]
            m = collections.Counter(i.family for i in body)
            if not m["HMMA"]:
                continue  # the set-up loops that copy coefficients
            rows.append(
                f"| {kernel_label(f.name)} | sm_{f.arch} | {body[0].addr:#06x}–{body[-1].addr:#06x} "
                f"| {len(body)} | " + " | ".join(str(m.get(k, 0)) for k in kinds) + " |"
            )
    return "\n".join(rows)


def perf_model_table(compiled) -> str:
    """scripts/perf_model.py's prediction table (loaded by path: scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("perf_model", ROOT / "scripts" / "perf_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.table(compiled=compiled)


def generated_sections(compiled=None) -> dict[str, dict[str, str]]:
    """{README key: {section name: markdown}}."""
    compiled = compiled or compile_all()
    th_funcs = compiled["talking_heads"].functions() + compiled["talking_heads_tc"].functions()
    ca_funcs = compiled["class_attention"].functions()
    stamp = f"<sub>Generated by `python -m tests.plugins.kernel_report --write` with nvcc {nvcc_version()}.</sub>"
    return {
        "talking_heads": {
            "plans": plan_table() + "\n\n" + stamp,
            "resources": resources_table(compiled, ["talking_heads_tc", "talking_heads"])
            + "\n\n"
            + stamp,
            "mix": mix_table(th_funcs) + "\n\n" + stamp,
            "loops": loop_table(th_funcs) + "\n\n" + stamp,
            "perf-model": perf_model_table(compiled)
            + "\n\n"
            + stamp.replace("Generated by", "Predicted, not measured. Generated by"),
        },
        "class_attention": {
            "resources": resources_table(compiled, ["class_attention"]) + "\n\n" + stamp,
            "mix": mix_table(ca_funcs) + "\n\n" + stamp,
        },
    }


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    if begin not in text or end not in text:
        raise KeyError(f"markers {begin} … {end} missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--write", action="store_true", help="rewrite the generated sections of the plugin READMEs"
    )
    args = ap.parse_args(argv)
    sections = generated_sections()
    for key, parts in sections.items():
        path = README[key]
        if args.write:
            text = path.read_text()
            for name, body in parts.items():
                text = replace_section(text, name, body)
            path.write_text(text)
            print(f"wrote {len(parts)} tables into {path.relative_to(ROOT)}")
        else:
            for name, body in parts.items():
                print(f"## {key}: {name}\n\n{body}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
