#!/usr/bin/env python
"""Benchmarks of the precision stages (each measurement in its own process).

    .venv/bin/python scripts/bench_precision.py                      # all three
    .venv/bin/python scripts/bench_precision.py --only calib,latency --json bench.json

- calib:   calibration throughput (images/s) and peak RSS for cait_xxs_24 at 128 and 512 images.
           Each count runs in a fresh process, so peak RSS is comparable: it must not grow with
           the number of images (statistics are streamed, one batch alive at a time).
- fp16:    wall time of `build --fp16` for cait_s_36_384 (goal ≤ 120 s on 2 cores), and of the
           stage chain export + fuse + to_fp16 alone (the CPU part of a build).
- latency: ONNX Runtime CPU latency, fp32 vs int8, cait_xxs_24, batch 1 and 8 (median of runs,
           2 threads, one process per model: engines are benchmarked in separate processes).
           int8 twice: rest fp16 (the TensorRT model; ORT CPU lacks most fp16 kernels and
           inserts casts) and rest fp32 (ORT fuses its Q/DQ into integer kernels).
Artifacts and images go to --work (default /tmp/bench_precision) and are reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable


def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("GLOG_minloglevel", "2")
    return e


def _child(*args) -> dict:
    """Run this script's hidden worker in a fresh process; it prints one JSON line last."""
    r = subprocess.run([PY, __file__, *map(str, args)], env=_env(), capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"worker {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---- workers (run in their own process) ----------------------------------------------------
def worker_calib(src: str, data: str, images: int) -> dict:
    import onnx

    from pipeline.contract.reference import runnable
    from pipeline.data import ImageFolderDataset, split_calib_parity
    from pipeline.onnx_io import image_input
    from pipeline.stages.calibrate import calibrate
    from pipeline.stages.quantize import parity_count, prepare, quantizable

    ds = ImageFolderDataset.from_dir(data)
    calib = split_calib_parity(ds.samples, images, parity_count(len(ds), 256)).calib
    model = onnx.load(src)
    prepare(model)
    acts = sorted({t["act"] for t in quantizable(model).values()})
    rss_before = _peak_rss_mb()
    _, meta = calibrate(
        runnable(model),
        Path(src),
        acts,
        calib,
        image_input(model).size,
        cache=None,
        data_hash="bench",
        progress=False,
    )
    return {
        "images": meta["images"],
        "tensors": len(acts),
        "seconds": meta["seconds"],
        "images_per_s": meta["images_per_s"],
        "rss_before_mb": round(rss_before),
        "peak_rss_mb": round(_peak_rss_mb()),
    }


def worker_latency(path: str, batch: int, runs: int) -> dict:
    import numpy as np

    from pipeline.onnx_io import ort_session

    sess = ort_session(Path(path), threads=2)
    x = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(2):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return {
        "median_ms": round(1000 * float(np.median(times)), 1),
        "p90_ms": round(1000 * float(np.percentile(times, 90)), 1),
        "runs": runs,
    }


# ---- sections -------------------------------------------------------------------------------
def _xxs24(work: Path) -> Path:
    out = work / "cait_xxs_24"
    if not (out / "model.onnx").exists():
        from pipeline.presets import get_preset
        from pipeline.stages.export import export

        export(get_preset("cait_xxs_24"), out)
    return out / "model.onnx"


def _images(work: Path, n: int = 1000) -> Path:
    d = work / "jpegs"
    if not d.exists() or len(list(d.iterdir())) < n:
        from tests.support.synthetic import write_synthetic_imagenet

        write_synthetic_imagenet(d, n, size=256, num_classes=20)
    return d


def bench_calib(work: Path) -> dict:
    src, data = _xxs24(work), _images(work)
    return {str(n): _child("_calib", src, data, n) for n in (128, 512)}


def bench_latency(work: Path, runs: int) -> dict:
    from pipeline.stages.quantize import to_int8

    src = _xxs24(work)
    variants = {"fp32": src}
    for rest in ("fp16", "fp32"):  # int8 + fp16 (TensorRT's model), int8 + fp32 (ORT CPU's)
        dst = src.parent / f"model.int8_{rest}.onnx"
        if not dst.exists():
            to_int8(
                src,
                dst,
                calib_data=_images(work),
                images=128,
                method="entropy",
                rest=rest,
                cache=src.parent / "calib.json",
                progress=False,
            )
        variants[f"int8_rest_{rest}"] = dst
    out = {}
    for name, path in variants.items():
        for b in (1, 8):
            out[f"{name}_b{b}"] = _child("_latency", path, b, runs if b == 1 else max(3, runs // 4))
    return out


def bench_fp16(work: Path, with_build: bool) -> dict:
    res = {}
    out = work / "cait_s_36_384_fp16"
    code = (
        f"import sys,time,json;sys.path.insert(0,{str(ROOT)!r});t0=time.perf_counter();"
        "from pipeline.presets import get_preset;from pipeline.stages.export import export;"
        "from pipeline.stages.fuse import fuse;from pipeline.stages.precision import to_fp16;"
        f"p=get_preset('cait_s_36_384');o={str(out)!r};export(p,o,force=True);t1=time.perf_counter();"
        "fuse(o+'/model.onnx',o+'/model.fused.onnx',expect_blocks=p.depth,force=True);"
        "t2=time.perf_counter();to_fp16(o+'/model.fused.onnx',o+'/model.fp16.onnx',force=True);"
        "t3=time.perf_counter();print(json.dumps({'export_s':round(t1-t0,1),"
        "'fuse_s':round(t2-t1,1),'to_fp16_s':round(t3-t2,1),'total_s':round(t3-t0,1)}))"
    )
    r = subprocess.run([PY, "-c", code], env=_env(), capture_output=True, text=True)
    res["stages"] = (
        json.loads(r.stdout.strip().splitlines()[-1])
        if r.returncode == 0
        else {"error": r.stderr[-800:]}
    )
    if with_build:
        t = time.perf_counter()
        r = subprocess.run(
            [
                PY,
                "-m",
                "pipeline",
                "build",
                "--model",
                "cait_s_36_384",
                "--fp16",
                "--out",
                str(work / "build_s36"),
                "--images",
                "8",
            ],
            env=_env(),
            capture_output=True,
            text=True,
        )
        res["build_cli"] = {
            "seconds": round(time.perf_counter() - t, 1),
            "rc": r.returncode,
            "tail": r.stderr.strip().splitlines()[-1:] if r.returncode else [],
        }
    return res


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_calib":
        print(json.dumps(worker_calib(argv[1], argv[2], int(argv[3]))))
        return 0
    if argv and argv[0] == "_latency":
        print(json.dumps(worker_latency(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="calib,fp16,latency")
    p.add_argument("--work", default="/tmp/bench_precision")
    p.add_argument("--runs", type=int, default=20, help="latency runs at batch 1")
    p.add_argument("--no-build", action="store_true", help="fp16: time the stages only")
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for section in args.only.split(","):
        t = time.perf_counter()
        if section == "calib":
            results["calib"] = bench_calib(work)
        elif section == "latency":
            results["latency"] = bench_latency(work, args.runs)
        elif section == "fp16":
            results["fp16"] = bench_fp16(work, not args.no_build)
        else:
            raise SystemExit(f"unknown section {section!r}")
        print(
            f"{section} ({time.perf_counter() - t:.0f} s): {json.dumps(results[section])}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
