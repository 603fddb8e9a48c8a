"""`profile`: trtexec benchmark + per-layer profile of an engine, grouped by CaiT block kind."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import onnx

from pipeline.artifacts import write_json_atomic
from pipeline.errors import UserError
from pipeline.trt import profile as prof
from pipeline.trt.guard import find_engine_record
from pipeline.trt.trtexec import profile_command, quote
from pipeline.trt.versions import normalize_target


def add_arguments(p):
    p.add_argument("engine", help="engine file (its manifest record gives input and plugins)")
    p.add_argument("--batch", type=int, default=32, help="batch size to run (default 32)")
    p.add_argument("--plugins", help="plugin library (default: the one recorded for the engine)")
    p.add_argument(
        "--onnx",
        help="ONNX the engine was built from (maps layers to CaiT blocks; "
        "default: the one recorded)",
    )
    p.add_argument("--out", help="folder for the exported JSON (default: <engine>.profile/)")
    p.add_argument("--duration", type=int, default=10, help="seconds of measurement (default 10)")
    p.add_argument("--trt", help="TensorRT target of the trtexec on PATH (default: detected)")
    p.add_argument("--trtexec", default="trtexec", help="trtexec binary (default: on PATH)")
    p.add_argument(
        "--from-exports",
        action="store_true",
        help="do not run trtexec; summarize the JSON files already in --out",
    )


def run(args) -> int:

    engine = Path(args.engine)
    out = Path(args.out) if args.out else engine.with_name(engine.name + ".profile")
    record = find_engine_record(engine) or {}
    qps = None
    if not args.from_exports:
        exe = shutil.which(args.trtexec)
        if exe is None:
            raise UserError(
                f"{args.trtexec} not found: install TensorRT (trtexec is in its bin/) "
                "or pass --trtexec PATH"
            )
        target = args.trt or _trtexec_target(exe)
        inp = record.get("input")
        if not inp:
            raise UserError(
                f"no manifest record with the input of {engine}; build it with "
                "`python -m pipeline engine` or pass the exports with --from-exports"
            )
        plugins = args.plugins or (record.get("plugin_library") or {}).get("path")
        out.mkdir(parents=True, exist_ok=True)
        cmd = profile_command(
            engine,
            target=target,
            input_name=inp["name"],
            input_shape=tuple(inp["shape"][1:]),
            batch=args.batch,
            export_dir=out,
            plugins=plugins,
            duration_s=args.duration,
            trtexec=exe,
        )
        print(f"$ {quote(cmd)}")
        res = subprocess.run(cmd, capture_output=True, text=True)
        (out / "trtexec.log").write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            raise UserError(f"trtexec failed (exit {res.returncode}); see {out / 'trtexec.log'}")
        qps = prof.parse_qps(res.stdout)
    elif (out / "trtexec.log").exists():
        qps = prof.parse_qps((out / "trtexec.log").read_text())
    onnx_path = args.onnx or record.get("onnx")
    model = (
        onnx.load(onnx_path, load_external_data=False)
        if onnx_path and Path(onnx_path).is_file()
        else None
    )
    summary = prof.summarize(
        batch=args.batch,
        qps=qps,
        times=prof.load_json(out / "times.json"),
        profile=prof.load_json(out / "profile.json"),
        layer_info=(
            prof.load_json(out / "layers.json") if (out / "layers.json").exists() else None
        ),
        model=model,
    )
    write_json_atomic(out / "summary.json", summary)
    print(prof.format_summary(summary))
    return 0


def _trtexec_target(exe: str) -> str:
    """trtexec prints `[TensorRT v100300]` (major*10000 + minor*100 + patch) in its banner."""
    res = subprocess.run([exe, "--help"], capture_output=True, text=True)
    m = re.search(r"TensorRT v(\d+)", res.stdout + res.stderr)
    if not m:
        raise UserError("cannot tell trtexec's TensorRT version; pass --trt 10.3|10.16|11.x")
    v = int(m.group(1))
    return normalize_target(f"{v // 10000}.{v // 100 % 100}")
