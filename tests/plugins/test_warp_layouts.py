"""The emulated warp primitives (mma, ldmatrix) against CUTLASS's statement of the fragment
layouts (tests/plugins/warp_layouts.py). The emulation implements them from the PTX ISA text; the
kernel tests can only catch a kernel whose layout assumptions differ from the emulation's, so the
emulation itself is pinned here to a second, independent source.
"""

import numpy as np

from . import warp_layouts


def _mma_probe(lib):
    def run(k, a, b, c):
        a, b, d = (np.ascontiguousarray(x) for x in (a, b, c.copy()))
        rc = lib.cait_probe_mma(k, a.ctypes.data, b.ctypes.data, d.ctypes.data, None)
        assert rc == 0
        return d

    return run


def _ldmatrix_probe(lib):
    def run(rows, trans):
        m = np.ascontiguousarray(rows.view(np.uint16))
        out = np.zeros((32, 4), np.uint32)
        rc = lib.cait_probe_ldmatrix(m.ctypes.data, trans, out.ctypes.data, None)
        assert rc == 0
        return out

    return run


def test_emulated_mma_matches_cutlass_layouts(emulated_kernels):
    assert warp_layouts.check_mma(_mma_probe(emulated_kernels), np.random.default_rng(0)) == []


def test_emulated_ldmatrix_feeds_mma_fragments(emulated_kernels):
    assert (
        warp_layouts.check_ldmatrix(_ldmatrix_probe(emulated_kernels), np.random.default_rng(1))
        == []
    )


def test_a_wrong_layout_is_detected(emulated_kernels):
    """The check itself can fail: a probe that swaps two lanes' registers is reported."""
    probe = _mma_probe(emulated_kernels)

    def swapped(k, a, b, c):
        a = a.copy()
        a[[0, 1]] = a[[1, 0]]
        return probe(k, a, b, c)

    assert warp_layouts.check_mma(swapped, np.random.default_rng(0))
