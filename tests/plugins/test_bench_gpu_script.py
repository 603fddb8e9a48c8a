"""scripts/bench_attention_gpu.py on a machine without a GPU: its PyTorch baseline computes the
fused op's contract (so that the GPU ratios compare like with like), the goal's verdict reads
recorded measurements right, and without CUDA the script says so in one line and exits 2."""

import importlib.util

import numpy as np
import pytest

from . import reference
from .emulation import ROOT

torch = pytest.importorskip("torch", reason="torch is part of the test extras")


def _script():
    spec = importlib.util.spec_from_file_location(
        "bench_attention_gpu", ROOT / "scripts" / "bench_attention_gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("H,N", [(4, 13), (16, 9)])
def test_unfused_baseline_is_the_contract(H, N):
    rng = np.random.default_rng(H + N)
    B, d = 2, 48
    qkv = rng.standard_normal((B, N, 3 * H * d))
    w1, w2 = (rng.standard_normal((H, H)) for _ in range(2))
    b1, b2 = (rng.standard_normal(H) for _ in range(2))
    scale = d**-0.5
    t = [torch.from_numpy(x) for x in (qkv, w1, b1, w2, b2)]
    got = _script().unfused_talking_heads(*t, scale, H).numpy()
    ref = reference.talking_heads(qkv, H, scale, w1.ravel(), b1, w2.ravel(), b2)
    assert np.abs(got - ref).max() <= 1e-9 * np.abs(ref).max()


def test_without_cuda_one_line_and_exit_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the script would run")
    assert _script().main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no CUDA device visible to PyTorch"]


def test_goal_verdict_on_recorded_measurements():
    """The planner's kernel only; 1.5x eager at B = 32 for the two goal presets, 1.0x at B = 1
    for every preset; other batches, presets and candidates are not goal terms."""

    def rec(preset, batch, vs_eager, candidate="fused auto"):
        return dict(preset=preset, batch=batch, candidate=candidate, vs_eager=vs_eager, plan="p")

    lines = _script().goal_verdict(
        [
            rec("s_36_384", 32, 1.62),
            rec("m_48_448", 32, 1.49),
            rec("m_48_448", 1, 0.97),
            rec("xxs_24", 1, 1.0),
            rec("xxs_24", 32, 0.5),  # not a goal preset at B = 32
            rec("s_36_384", 8, 0.1),  # B = 8 is not a goal term
            rec("s_36_384", 1, 0.2, candidate="fused tc-1pass"),  # a forced variant
        ]
    )
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["met", "MISSED", "MISSED", "met"]
    assert lines[1].startswith("goal m_48_448 B=32: 1.49x eager (needs >= 1.5x")
