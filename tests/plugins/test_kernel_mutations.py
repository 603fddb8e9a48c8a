"""A tensor-core kernel with one fragment element in the wrong place fails the reference check.

Each case copies the kernel sources, changes one fragment index in
plugins/talkingHeadsAttentionPlugin/talkingHeadsTensorCore.cu, builds the emulation of that copy
and runs a small shape: the relative error must exceed the fp16 tolerance (or the output must be
non-finite). This is what makes "the emulated tests pass" mean something for the fragment layouts.
"""

import ctypes
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from . import emulation, reference
from .conftest import find_cuda_include
from .test_kernels_emulated import TOL

KERNEL = "talkingHeadsAttentionPlugin/talkingHeadsTensorCore.cu"
MUTATIONS = {
    # B fragment of P'V: keys 2t and 2t+1 exchanged.
    "v-keys": ("lowHalves(w[v][0], w[v][1])", "lowHalves(w[v][1], w[v][0])"),
    # A fragment of Q K^T: the two channel pairs of a row exchanged (K keeps the documented order).
    "q-channels": (
        "qa[s][half] = v.x;\n            qa[s][2 + half] = v.y;",
        "qa[s][half] = v.y;\n            qa[s][2 + half] = v.x;",
    ),
    # B fragment of the post-mix (ldmatrix.trans): the matrices of input heads 0-7 and 8-15 exchanged
    # with those of keys 0-7 and 8-15.
    "postmix-matrices": (
        "int32_t const k = (mat & 1) * 8 + (th.lane & 7);",
        "int32_t const k = (mat >> 1) * 8 + (th.lane & 7);",
    ),
    # D fragment of P'V: the even and odd n-tiles' channels exchanged in the output.
    "out-channels": (
        "emit(at + 16 * v, ev[2 * half], od[2 * half], ev[2 * half + 1], od[2 * half + 1]);",
        "emit(at + 16 * v, od[2 * half], ev[2 * half], od[2 * half + 1], ev[2 * half + 1]);",
    ),
}


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    cuda = find_cuda_include()
    assert cuda is not None, "cuda_fp16.h not found (CUDA toolkit headers are part of CI)"
    root = tmp_path_factory.mktemp("mutants")

    def build(name):
        src = root / name / "plugins"
        shutil.copytree(emulation.ROOT / "plugins", src)
        path = src / KERNEL
        old, new = MUTATIONS[name]
        text = path.read_text()
        assert text.count(old) == 1, f"mutation {name!r} no longer matches the kernel source"
        path.write_text(text.replace(old, new))
        lib = root / name / "libmutant.so"
        emulation.run(
            [
                "g++",
                "-std=c++17",
                "-O1",
                "-DCAIT_EMULATION",
                "-fPIC",
                "-shared",
                f"-I{src}",
                "-isystem",
                str(cuda),
                str(src / "capi/kernelsCApi.cpp"),
                "-o",
                str(lib),
            ]
        )
        return name, emulation.declare(ctypes.CDLL(str(lib)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(build, MUTATIONS))


@pytest.mark.parametrize(
    "variant", [emulation.TC_ONE_PASS, emulation.TC_TWO_PASS], ids=["one-pass", "two-pass"]
)
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_misplaced_fragment_element_fails(mutants, name, variant):
    rng = np.random.default_rng(3)
    B, H, N, d = 1, 8, 45, 48
    qkv = rng.standard_normal((B, N, 3 * H * d)).astype(np.float16)
    scale = np.float32(d**-0.5)
    mix = emulation.mixing(rng, H)
    out = emulation.run_talking_heads(mutants[name], qkv, H, scale, mix, variant=variant, rows=16)
    ref = reference.talking_heads(qkv, H, scale, *mix)
    err = emulation.rel_err(out, ref) if np.isfinite(out).all() else float("inf")
    assert err > 10 * TOL[np.float16], f"mutation {name!r} went unnoticed (error {err:.2g})"
