"""The compiled kernels: no spills, no static shared memory, the register budgets the launch
bounds promise, tensor-core instructions in the talking-heads tensor-core kernels' SASS, and
README tables that match.

nvcc and cuobjdump (the nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm wheels of the test extras)
are part of CI, so their absence fails rather than skips. One nvcc per kernel file covers all six
architectures (~40 s on 2 cores for the three files).
"""

import re
import shutil

import pytest

from . import kernel_report as kr


@pytest.fixture(scope="module")
def compiled():
    if shutil.which("nvcc") is None:
        pytest.fail("nvcc is not on PATH: the kernel resource check is part of CI and needs it")
    return kr.compile_all()


@pytest.fixture(scope="module")
def functions(compiled):
    if kr.find_cuobjdump() is None:
        pytest.fail(
            "cuobjdump not found: `pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm` (test extras)"
        )
    return {key: c.functions() for key, c in compiled.items()}


EXPECTED = {
    "talking_heads": {f"{v} {d}" for v in ("full-row", "streaming") for d in ("fp16", "fp32")},
    "talking_heads_tc": {
        f"tensor core H={h} T={t} {p}"
        for h in (4, 6, 8, 16)
        for t in (1, 2)
        for p in ("1-pass", "2-pass", "split stats", "split output")
    },
    "class_attention": {"class attention fp16", "class attention fp32"},
}


def test_every_kernel_and_arch_reported(compiled):
    for key, c in compiled.items():
        seen = {(kr.kernel_label(r["kernel"]), r["arch"]) for r in c.records}
        archs = [a for a in kr.ARCHS if a >= 80] if key == "talking_heads_tc" else kr.ARCHS
        assert seen == {(k, a) for k in EXPECTED[key] for a in archs}, (
            f"{key}: {sorted(seen)}\n{c.log}"
        )
        assert all(r["registers"] is not None for r in c.records), c.log


def test_no_register_spills(compiled):
    spills = [
        (key, r["kernel"], r["arch"], r["spill_stores"], r["spill_loads"])
        for key, c in compiled.items()
        for r in c.records
        if r["spill_stores"] or r["spill_loads"] or r["stack"]
    ]
    assert not spills, f"register spills or stack (key, kernel, arch, store B, load B): {spills}"


def test_no_static_shared_memory(compiled):
    """Every kernel is opted in to the device's whole shared-memory limit as *dynamic* memory
    (talkingHeadsPrepare / classAttentionPrepare): CUDA refuses that opt-in for a kernel with any
    static __shared__ bytes, so one such variable would fail the plugin on every GPU."""
    static = [
        (kr.kernel_label(r["kernel"]), r["arch"], r["static_smem"])
        for c in compiled.values()
        for r in c.records
        if r["static_smem"]
    ]
    assert not static, f"static shared memory (kernel, arch, bytes): {static}"


def test_static_shared_memory_is_parsed():
    log = (
        "ptxas info    : Compiling entry function '_Z1kv' for 'sm_90'\n"
        "ptxas info    : Used 116 registers, used 1 barriers, 16 bytes smem\n"
    )
    assert kr.parse_ptxas(log)[0]["static_smem"] == 16


def test_register_budgets(compiled):
    """CUDA-core kernels declare __launch_bounds__(256, 2); the tensor-core kernels (32 H, 1): one
    block of one warp per head must fit the register file."""
    for key, c in compiled.items():
        for r in c.records:
            label = kr.kernel_label(r["kernel"])
            need = 1 if key == "talking_heads_tc" else 2
            got = kr.blocks_per_sm_by_registers(
                r["registers"], kr.threads_of(key, label), r["arch"]
            )
            assert got >= need, (label, r)


@pytest.mark.parametrize("arch", [87, 90])
def test_tensor_core_kernels_use_tensor_cores(functions, arch):
    """Every talking-heads tensor-core kernel: HMMA (mma.sync), LDSM (ldmatrix) and MUFU (exp2) in
    the SASS of Orin and Hopper; the split-statistics kernel has no P'V and so no ldmatrix (its K
    goes from global memory straight into fragments). The CUDA-core kernels have no HMMA."""
    tc = [f for f in functions["talking_heads_tc"] if f.arch == arch]
    assert {kr.kernel_label(f.name) for f in tc} == EXPECTED["talking_heads_tc"]
    for f in tc:
        mix, label = f.mix(), kr.kernel_label(f.name)
        ldsm = 0 if label.endswith("split stats") else 1
        assert mix["HMMA"] > 0 and mix["LDSM"] >= ldsm and mix["MUFU"] > 0, (label, dict(mix))
        assert all(
            i.op.startswith("HMMA.16816.F32") or i.op.startswith("HMMA.1688.F32")
            for i in f.instrs
            if i.family == "HMMA"
        ), "fp16 inputs, fp32 accumulators only"
    for f in functions["talking_heads"]:
        if f.arch == arch:
            assert f.mix()["HMMA"] == 0, kr.kernel_label(f.name)


@pytest.mark.parametrize("arch", [87, 90])
def test_whole_chunk_loops_check_no_keys(functions, arch):
    """The loops over whole 32-key chunks carry no key checks (the last chunk, when 32 does not
    divide N, runs a masked copy after the loop): no score set to -inf inside any tensor-core loop.
    And P'V loads V at immediate offsets from one pointer per lane: no 64-bit multiply-add per key
    row in its loop (the loop with mma and global loads, without exp or barrier)."""
    for f in functions["talking_heads_tc"]:
        if f.arch != arch:
            continue
        label = kr.kernel_label(f.name)
        for first, last in f.loops():
            body = f.instrs[first : last + 1]
            families = {i.family for i in body}
            if "HMMA" not in families:
                continue
            masks = [i for i in body if i.family == "FSEL" and "-INF" in i.operands]
            assert not masks, (label, first, "key masking inside a loop over whole chunks")
            if "LDG" in families and not families & {"MUFU", "BAR"}:
                wide = [i for i in body if i.op.startswith("IMAD.WIDE")]
                assert not wide, (label, first, "per-key address arithmetic in the P'V loop")


def test_loops_are_found(functions):
    """The loop table reads loops from backward branches: the one-pass kernel with two row tiles
    has its chunk loop, a post-mix loop per mix-group slot and the P'V loop."""
    f = next(
        f
        for f in functions["talking_heads_tc"]
        if f.arch == 90 and "ILi16ELi2ELNS0_6TcModeE0E" in f.name
    )
    loops = [(a, b) for a, b in f.loops() if any(i.family == "HMMA" for i in f.instrs[a : b + 1])]
    assert len(loops) == 4, loops  # chunk loop, post-mix per group slot (2), P'V
    sizes = [last - first + 1 for first, last in loops]
    assert max(sizes) < len(f.instrs) / 2, "a loop spans most of the kernel: EXIT filtering broke"


def test_readme_tables_are_current(compiled, emulated_kernels):
    """The generated tables in the plugin READMEs are what `kernel_report --write` writes now
    (checked only with the nvcc version that generated them: registers change between releases)."""
    version = kr.nvcc_version()
    sections = kr.generated_sections(compiled)
    for key, parts in sections.items():
        text = kr.README[key].read_text()
        stamp = re.search(r"with nvcc (\d+\.\d+)", text)
        if stamp is None or stamp.group(1) != version:
            pytest.skip(
                f"{kr.README[key].name} was generated with nvcc {stamp and stamp.group(1)}, this is {version}"
            )
        for name, body in parts.items():
            assert kr.replace_section(text, name, body) == text, (
                f"{kr.README[key].relative_to(kr.ROOT)} section {name!r} is stale: "
                "run `python -m tests.plugins.kernel_report --write`"
            )
