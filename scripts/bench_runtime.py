#!/usr/bin/env python3
"""CPU runtime benchmark: Paddle (dygraph, Paddle Inference + oneDNN), ONNX Runtime and OpenVINO
(fp32 plain, fp32 plugin-free fast path, int8) at batch 1 and 8, each engine in its own process,
reported as ratios to Paddle Inference, and OpenVINO against ONNX Runtime on the same graph.

    python scripts/bench_runtime.py --model cait_xxs_24 --root engines/cait_xxs_24 [--threads 2]
        [--rounds 3]

`--rounds R` runs every engine once per round, round after round (alternating, so a burst of
load from elsewhere hits all engines alike) and reports each engine's median over the rounds.

Artifacts are found under --root (searched recursively; override with --fp32/--fast/--int8):
- Paddle Inference: <dir>/paddle/inference.json|.pdmodel + .pdiparams (written by export)
- ORT fp32 plain:   model.onnx
- ORT fp32 fast:    a model.fused.onnx without plugin nodes (build --attention onnx)
- ORT int8:         a model.int8.onnx without plugin nodes (build --int8 --attention onnx)
- OpenVINO (ov-*):   the same three files, through pipeline.runners.openvino (what `infer
                     --backend openvino` runs: fp32 inference precision, LATENCY hint)
Missing ones are skipped with a note. Numbers are wall-clock medians; on shared CPUs expect
±30 % noise on shared machines: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = (
    "paddle-dygraph",
    "paddle-inference",
    "ort-fp32",
    "ort-fp32-fast",
    "ort-int8",
    "ov-fp32",
    "ov-fp32-fast",
    "ov-int8",
)
REFERENCE = "paddle-inference"


def plugin_free(path: Path) -> bool:
    import onnx

    from pipeline.contract import SPECS

    m = onnx.load(str(path), load_external_data=False)
    return not any(n.op_type in SPECS for n in m.graph.node)


def find_artifacts(args) -> dict[str, Path | None]:
    root = Path(args.root)
    found: dict[str, Path | None] = {}

    def first(pattern, check=None):
        for p in sorted(root.rglob(pattern)):
            if check is None or check(p):
                return p
        return None

    found["ort-fp32"] = Path(args.fp32) if args.fp32 else first("model.onnx")
    found["ort-fp32-fast"] = (
        Path(args.fast) if args.fast else first("model.fused.onnx", plugin_free)
    )
    found["ort-int8"] = Path(args.int8) if args.int8 else first("model.int8.onnx", plugin_free)
    for kind in ("fp32", "fp32-fast", "int8"):  # OpenVINO reads the same files
        found[f"ov-{kind}"] = found[f"ort-{kind}"]
    program = first("paddle/inference.json") or first("paddle/inference.pdmodel")
    found["paddle-inference"] = program
    found["paddle-dygraph"] = Path("<model>")  # built from the preset, needs no artifact
    return found


# ---- worker: one engine, one process ----------------------------------------------------------


def make_runner(engine: str, path: str, preset, threads: int):
    import numpy as np

    if engine.startswith("ort"):
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        dtype = np.float16 if "float16" in sess.get_inputs()[0].type else np.float32
        return lambda x: sess.run(None, {name: x.astype(dtype)})[0]
    if engine.startswith("ov"):
        from pipeline.runners.openvino import OpenVinoRunner

        return OpenVinoRunner(path, threads=threads).run
    import paddle

    paddle.set_device("cpu")
    if engine == "paddle-dygraph":
        from pipeline.models import build_model

        model = build_model(preset)

        def run(x):
            with paddle.no_grad():
                return model(paddle.to_tensor(x)).numpy()

        return run
    import paddle.inference as pi

    program = Path(path)
    config = pi.Config(str(program), str(program.with_suffix(".pdiparams")))
    config.disable_gpu()
    config.enable_onednn()
    config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(x):
        inp.reshape(list(x.shape))
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()

    return run


def worker(args) -> None:
    import numpy as np

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from pipeline.presets import get_preset

    preset = get_preset(args.model)
    run = make_runner(args.worker, args.path, preset, args.threads)
    x = (
        np.random.default_rng(0)
        .standard_normal((args.batch, 3, preset.img_size, preset.img_size))
        .astype(np.float32)
    )
    for _ in range(args.warmup):
        run(x)
    times = []
    deadline = time.perf_counter() + args.seconds
    while len(times) < args.min_iters or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
        if len(times) >= args.max_iters:
            break
    med = statistics.median(times)
    print(
        json.dumps(
            {
                "engine": args.worker,
                "batch": args.batch,
                "median_ms": med * 1e3,
                "images_per_s": args.batch / med,
                "iters": len(times),
            }
        )
    )


# ---- parent: one subprocess per (engine, batch) -----------------------------------------------


def run_case(args, engine: str, path: Path, batch: int, notes: list) -> dict | None:
    """One (engine, batch) measurement in a fresh process."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        engine,
        "--path",
        str(path),
        "--batch",
        str(batch),
        "--model",
        args.model,
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--min-iters",
        str(args.min_iters),
        "--max-iters",
        str(args.max_iters),
    ]
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS=str(args.threads),
        GLOG_minloglevel="2",
    )
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((s for s in reversed(r.stdout.splitlines()) if s.startswith("{")), None)
    if r.returncode != 0 or line is None:
        notes.append(
            f"{engine} batch {batch}: failed — {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
        )
        return None
    return json.loads(line)


def median_over_rounds(runs: list[dict]) -> list[dict]:
    """One result per (engine, batch): the median of its rounds' medians, in first-seen order."""
    keys = list(dict.fromkeys((r["engine"], r["batch"]) for r in runs))
    out = []
    for engine, batch in keys:
        ms = [r["median_ms"] for r in runs if (r["engine"], r["batch"]) == (engine, batch)]
        med = statistics.median(ms)
        out.append(
            {
                "engine": engine,
                "batch": batch,
                "median_ms": med,
                "images_per_s": batch / (med / 1e3),
                "rounds_ms": ms,
            }
        )
    return out


def runtime_ratios(results: list[dict]) -> list[str]:
    """'OpenVINO vs ONNX Runtime' on the same graph and batch: ORT time / OpenVINO time."""
    ms = {(r["engine"], r["batch"]): r["median_ms"] for r in results}
    lines = []
    for (engine, batch), t in ms.items():
        if engine.startswith("ov-") and ("ort-" + engine[3:], batch) in ms:
            ort = ms["ort-" + engine[3:], batch]
            lines.append(
                f"OpenVINO vs ONNX Runtime, {engine[3:]}, batch {batch}: {ort / t:.2f}× "
                f"({ort:.1f} / {t:.1f} ms)"
            )
    if ("ov-fp32-fast", 1) in ms and ("ort-fp32", 1) in ms:
        lines.append(
            "OpenVINO fast path vs ONNX Runtime plain export, batch 1: "
            f"{ms['ort-fp32', 1] / ms['ov-fp32-fast', 1]:.2f}×"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cait_xxs_24")
    p.add_argument("--root", default=None, help="artifact root (default engines/<model>)")
    p.add_argument("--fp32"), p.add_argument("--fast"), p.add_argument("--int8")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seconds", type=float, default=10.0, help="measurement time per case")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=5)
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds (median over them)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    args.root = args.root or str(ROOT / "engines" / args.model)
    found = find_artifacts(args)
    runs, notes = [], []
    for _ in range(max(args.rounds, 1)):
        for engine in args.engines:
            path = found.get(engine)
            if path is None:
                note = f"{engine}: skipped — no artifact under {args.root}"
                notes += [note] if note not in notes else []
                continue
            for batch in args.batches:
                result = run_case(args, engine, path, batch, notes)
                if result:
                    runs.append(result)
    results = median_over_rounds(runs)
    ref = {r["batch"]: r["median_ms"] for r in results if r["engine"] == REFERENCE}
    print(f"{'engine':<18} {'batch':>5} {'median ms':>10} {'img/s':>8} {'× Paddle Inference':>19}")
    for r in results:
        ratio = (ref[r["batch"]] / r["median_ms"]) if r["batch"] in ref else float("nan")
        r["speedup_vs_paddle_inference"] = ratio
        print(
            f"{r['engine']:<18} {r['batch']:>5} {r['median_ms']:>10.1f} "
            f"{r['images_per_s']:>8.1f} {ratio:>18.2f}×"
        )
    for line in runtime_ratios(results):
        print(line)
    for n in notes:
        print(f"note: {n}")
    if not ref:
        print("note: no Paddle Inference figures: ratios are undefined (nan)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": results,
                    "notes": notes,
                    "artifacts": {k: str(v) for k, v in found.items()},
                    "threads": args.threads,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
