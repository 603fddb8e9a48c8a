"""CPU latency of the plain export vs the plugin-free fast path (`fuse --attention onnx`).

    python scripts/bench_attention.py [--models cait_xxs_24 cait_xxs_24_384] [--runs 30]
                                      [--work /tmp/cait_bench] [--threads 2]

For each preset: export (random weights; latency does not depend on them), fuse with
`--attention onnx` (verified against the export with ONNX Runtime), then time both models with
ONNX Runtime on the CPU, batch 1, in the same process, alternating A/B run by run so that the
noise of a shared machine hits both alike; reports medians and the speed-up. Exits 1 if the
fast path is not at least --min-ratio (default 1.3) faster on cait_xxs_24_384.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.numerics import sample_images  # noqa: E402
from pipeline.presets import get_preset  # noqa: E402


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bench_pair(a: Path, b: Path, size: int, runs: int, threads: int) -> tuple[float, float]:
    sa, sb = _session(a, threads), _session(b, threads)
    x = sample_images(1, size, seed=1)
    feed_a, feed_b = {sa.get_inputs()[0].name: x}, {sb.get_inputs()[0].name: x}
    for _ in range(3):
        sa.run(None, feed_a)
        sb.run(None, feed_b)
    ta, tb = [], []
    for _ in range(runs):
        for sess, feed, out in ((sa, feed_a, ta), (sb, feed_b, tb)):
            t0 = time.perf_counter()
            sess.run(None, feed)
            out.append(time.perf_counter() - t0)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["cait_xxs_24", "cait_xxs_24_384"])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/cait_bench")
    p.add_argument("--min-ratio", type=float, default=1.3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from pipeline.stages.export import export
    from pipeline.stages.fuse import fuse

    rows = []
    for name in args.models:
        preset = get_preset(name)
        out = Path(args.work) / name
        plain = export(preset, out)
        fast = out / "model.fast.onnx"
        fuse(
            plain,
            fast,
            attention="onnx",
            verify=True,
            expect_blocks=preset.depth,
            report=out / "fuse_onnx_report.json",
        )
        ta, tb = bench_pair(plain, fast, preset.img_size, args.runs, args.threads)
        rows.append((name, ta, tb, ta / tb))
    print(
        f"\nONNX Runtime CPU, batch 1, {args.threads} threads, median of {args.runs} "
        f"(alternating runs)"
    )
    print(f"{'model':<18}{'plain ms':>10}{'fast ms':>10}{'ratio':>8}")
    for name, ta, tb, r in rows:
        print(f"{name:<18}{ta:>10.1f}{tb:>10.1f}{r:>7.2f}×")
    gate = [r for name, *_, r in rows if name == "cait_xxs_24_384"]
    if gate and gate[0] < args.min_ratio:
        print(
            f"FAIL: fast path only {gate[0]:.2f}× faster on cait_xxs_24_384 "
            f"(need ≥ {args.min_ratio}×)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
