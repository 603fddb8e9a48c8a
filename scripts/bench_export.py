#!/usr/bin/env python3
"""Export wall time and peak RSS per preset (each export in its own process), plus ONNX Runtime vs
Paddle CPU latency at batch 1, printed as ratios measured in one run.

    python scripts/bench_export.py [--models cait_xxs_24 cait_s_36_384] [--runs 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _export_child(model: str, out: str) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "export", "--model", model, "--out", out, "--force"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"export of {model} failed:\n{r.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far
    return {"wall_s": wall, "peak_rss_gb": peak_kb / 2**20}


def _latency_child(model: str, out: str, runs: int, threads: int) -> dict:
    code = f"""
import json, time, numpy as np, paddle
paddle.set_num_threads({threads}) if hasattr(paddle, 'set_num_threads') else None
from pipeline.presets import get_preset
from pipeline.onnx_io import ort_session
from pipeline.models import load_model
from pipeline.numerics import sample_images
p = get_preset({model!r}); x = sample_images(1, p.img_size)
def med(f):
    f(); ts = []
    for _ in range({runs}):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))
sess = ort_session({out!r} + '/model.onnx', threads={threads})
ort_ms = med(lambda: sess.run(['logits'], {{'image': x}})) * 1e3
m, _ = load_model(p, None); xt = paddle.to_tensor(x)
with paddle.no_grad():
    pd_ms = med(lambda: m(xt).numpy()) * 1e3
from paddle.inference import Config, create_predictor
cfg = Config({out!r} + '/paddle/inference.json', {out!r} + '/paddle/inference.pdiparams')
cfg.disable_gpu(); cfg.enable_mkldnn(); cfg.set_cpu_math_library_num_threads({threads})
pred = create_predictor(cfg)
h = pred.get_input_handle(pred.get_input_names()[0]); o = pred.get_output_handle(pred.get_output_names()[0])
def infer():
    h.copy_from_cpu(x); pred.run(); return o.copy_to_cpu()
pi_ms = med(infer) * 1e3
print(json.dumps({{'ort_ms': ort_ms, 'paddle_dygraph_ms': pd_ms, 'paddle_inference_ms': pi_ms}}))
"""
    env_threads = {"OMP_NUM_THREADS": str(threads)}
    import os

    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env_threads},
    )
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["cait_xxs_24", "cait_s_36_384"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for model in args.models:
        with tempfile.TemporaryDirectory() as out:
            # A fresh interpreter per model so peak RSS belongs to that export alone.
            row = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--_child-export", model, out],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            row.update(_latency_child(model, out, args.runs, args.threads))
        row["model"] = model
        row["ort_vs_paddle_inference"] = row["paddle_inference_ms"] / row["ort_ms"]
        row["ort_vs_paddle_dygraph"] = row["paddle_dygraph_ms"] / row["ort_ms"]
        rows.append(row)
        print(
            f"{model:<16} export {row['wall_s']:6.1f} s  peak RSS {row['peak_rss_gb']:5.2f} GB | "
            f"batch 1: ORT {row['ort_ms']:.1f} ms, Paddle Inference {row['paddle_inference_ms']:.1f}"
            f" ms (ORT ×{row['ort_vs_paddle_inference']:.2f}), Paddle dygraph "
            f"{row['paddle_dygraph_ms']:.1f} ms (ORT ×{row['ort_vs_paddle_dygraph']:.2f})",
            flush=True,
        )
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--_child-export":
        print(json.dumps(_export_child(sys.argv[2], sys.argv[3])))
        sys.exit(0)
    sys.exit(main())
