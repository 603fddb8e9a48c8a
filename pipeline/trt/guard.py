"""Refuse an engine that was built for another TensorRT, GPU or plugin library (pure Python).

A serialized engine is only valid for the TensorRT version and GPU it was built with (unless
built version-/hardware-compatible, which we do not do), and it embeds nothing of the plugin
code: a different library with the same plugin names would run different kernels. The record
written by the engine stage names all three; this module compares them with what is here.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import read_manifest
from pipeline.errors import UserError


def find_engine_record(engine_path) -> dict | None:
    """The manifest record (in the engine's folder) whose "engine" is this file, if any."""
    engine_path = Path(engine_path)
    stages = read_manifest(engine_path.parent).get("stages", {})
    for rec in stages.values():
        if (
            isinstance(rec, dict)
            and rec.get("engine") == engine_path.name
            and rec.get("status", "built") == "built"
        ):
            return rec
    return None


def rebuild_hint(engine_path, record: dict) -> str:
    onnx = record.get("onnx") or "<model>.onnx"
    script = record.get("script")
    how = f"run {script}" if script else f"python -m pipeline engine {onnx} -o {engine_path}"
    return f"rebuild the engine on this machine: {how} (build from the ONNX, never copy engines)"


def check_engine_record(
    engine_path,
    record: dict | None,
    *,
    trt_version: str,
    gpu_name: str | None,
    compute_capability: str | None,
    plugin_sha256: str | None,
) -> None:
    """Raise UserError naming every mismatch between `record` and this machine."""
    engine_path = Path(engine_path)
    if record is None:
        raise UserError(
            f"{engine_path}: no engine record in {engine_path.parent / 'manifest.json'}"
            "; cannot tell which TensorRT, GPU and plugin library built it. "
            f"{rebuild_hint(engine_path, {})}, or pass --skip-manifest-check"
        )
    diffs = []
    if record.get("tensorrt") != trt_version:
        diffs.append(f"TensorRT {record.get('tensorrt')} (here {trt_version})")
    if record.get("gpu") != gpu_name or record.get("compute_capability") != compute_capability:
        diffs.append(
            f"GPU {record.get('gpu')} sm_{str(record.get('compute_capability')).replace('.', '')}"
            f" (here {gpu_name} sm_{str(compute_capability).replace('.', '')})"
        )
    lib = record.get("plugin_library") or {}
    want = lib.get("sha256")
    if want and want != plugin_sha256:  # an engine without plugins runs whatever is loaded
        if not plugin_sha256:
            diffs.append(
                f"plugin library {lib.get('path')} sha256 {want[:12]}… (here: none loaded;"
                " pass --plugins)"
            )
        else:
            diffs.append(f"plugin library sha256 {want[:12]}… (here {plugin_sha256[:12]}…)")
    if diffs:
        raise UserError(
            f"{engine_path} was built for "
            + "; ".join(diffs)
            + ". "
            + rebuild_hint(engine_path, record)
        )
