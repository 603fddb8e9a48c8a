"""The engine stage of `build`: build the engine here if TensorRT is installed, otherwise leave a
ready script that builds it on the target (engines are built where they run, design §3)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import onnx

from pipeline.errors import UserError
from pipeline.trt import env, versions
from pipeline.trt.plugins import declared_plugins
from pipeline.trt.trtexec import build_command, quote

log = logging.getLogger(__name__)

DEFAULT_PLUGIN_LIB = "build/libcait_trt_plugins.so"


def engine_path_for(onnx_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """model.fp16.onnx → <out_dir>/model.fp16.engine (one engine per precision, same folder)."""
    return Path(out_dir) / (Path(onnx_path).name.removesuffix(".onnx") + ".engine")


def stage_key(engine_path: str | os.PathLike) -> str:
    """Manifest key of an engine record: one per engine file, several engines per folder."""
    return f"engine/{Path(engine_path).name}"


def onnx_input(model: onnx.ModelProto) -> tuple[str, tuple[int, ...]]:
    """Name and per-image shape (C, H, W) of the model's single image input."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(f"expected one image input, found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim[1:]
    if not dims or any(not d.HasField("dim_value") for d in dims):
        raise UserError(f"input {inputs[0].name} needs static non-batch dims to build a profile")
    return inputs[0].name, tuple(d.dim_value for d in dims)


def engine_stage(
    onnx_path,
    out_dir,
    *,
    plugins=None,
    batch=(1, 8, 32),
    workspace="2G",
    opt_level=3,
    timing_cache=None,
    trt_target="10.3",
    require_engine=False,
) -> dict:
    """Build `<out_dir>/<onnx stem>.engine` from `onnx_path`, or write the script that does.

    Signature: engine_stage(onnx_path, out_dir, *, plugins=None, batch=(1, 8, 32),
    workspace="2G", opt_level=3, timing_cache=None, trt_target="10.3", require_engine=False)
    -> dict

    - onnx_path: the model to build (model.fp16.onnx, model.int8.onnx, model.fused.onnx, …)
    - out_dir: the artifact directory; the engine and `<stem>.build_engine.sh` go there
    - plugins: path of libcait_trt_plugins.so, or None (required when the ONNX has plugin nodes
      and TensorRT is installed; in the script it defaults to $CAIT_PLUGINS)
    - batch: (min, opt, max) of the optimization profile on the batch axis
    - workspace: workspace pool limit ("2G", "512M", bytes as int)
    - opt_level: builder optimization level (0–5)
    - timing_cache: file loaded before and saved after the build (None: no cache)
    - trt_target: "10.3" | "10.16" | "11.x" — which trtexec line the script defaults to when it
      cannot ask the target's TensorRT its version
    - require_engine: without TensorRT, raise UserError instead of skipping

    Always writes the script (so an artifact folder copied to a target can rebuild there).
    Returns the manifest record: {"status": "built"|"skipped", "engine", "script", "onnx",
    "inputs": {"onnx": hash[, "plugins": hash]}, "settings", "message", …}; a built record
    also carries "tensorrt", "gpu", "compute_capability", "plugin_library". Like every stage it
    records itself in `<out_dir>/manifest.json`, under `stage_key(engine)` = "engine/<file>"
    (the runtime guard finds it by its "engine" file name). Prints the one status line
    (`engine: built …` or `engine: skipped (no TensorRT) — run <script> on the target`).
    """
    from pipeline.artifacts import onnx_hash, record_stage

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    target = versions.normalize_target(trt_target)
    batch = tuple(int(b) for b in batch)
    engine = engine_path_for(onnx_path, out_dir)
    model = onnx.load(str(onnx_path), load_external_data=False)
    has_plugin_nodes = any(n.op_type in declared_plugins() for n in model.graph.node)
    script = write_build_script(
        onnx_path,
        out_dir,
        model=model,
        plugins=plugins,
        batch=batch,
        workspace=workspace,
        opt_level=opt_level,
        timing_cache=timing_cache,
        trt_target=target,
        needs_plugins=has_plugin_nodes,
    )
    settings = {
        "batch": list(batch),
        "workspace": str(workspace),
        "opt_level": int(opt_level),
        "timing_cache": str(timing_cache) if timing_cache else None,
        "trt_target": target,
    }
    if env.has_builder() and env.gpu_info() is not None:
        if has_plugin_nodes and not plugins:
            raise UserError(
                f"{onnx_path.name} has plugin nodes: pass --plugins "
                f"{DEFAULT_PLUGIN_LIB} (or build the fallback with "
                "`python -m pipeline fuse … --attention onnx`)"
            )
        fresh = _fresh_record(out_dir, engine, onnx_path, plugins, settings)
        if fresh is not None:
            fresh["message"] = (
                f"engine: {engine} is up to date (same ONNX, plugins, settings, "
                f"TensorRT {fresh['tensorrt']} and GPU)"
            )
            print(fresh["message"])
            return fresh
        from pipeline.trt.build import build_engine

        record = build_engine(
            onnx_path,
            engine,
            plugins=plugins,
            batch=batch,
            workspace=workspace,
            opt_level=opt_level,
            timing_cache=timing_cache,
        )
        record.update(script=str(script), settings=settings)
        record["message"] = (
            f"engine: built {engine} (TensorRT {record['tensorrt']}, {record['gpu']})"
        )
        print(record["message"])
        record_stage(out_dir, stage_key(engine), record)
        return record
    why = "no TensorRT" if not env.has_builder() else "no CUDA GPU"
    if require_engine:
        raise UserError(
            f"--require-engine: cannot build {engine.name} here ({why}); run "
            f"{script} on the target, or drop --require-engine"
        )
    message = f"engine: skipped ({why}) — run {script} on the target"
    print(message)
    record = {
        "status": "skipped",
        "reason": why,
        "engine": engine.name,
        "script": str(script),
        "onnx": onnx_path.name,
        "inputs": {"onnx": onnx_hash(onnx_path)},
        "settings": settings,
        "message": message,
    }
    record_stage(out_dir, stage_key(engine), record)
    return record


def _fresh_record(out_dir, engine, onnx_path, plugins, settings) -> dict | None:
    """The existing record if rebuilding would give the same engine (design §1: a stage whose
    inputs did not change is not re-run); None otherwise."""
    from pipeline.artifacts import onnx_hash, sha256_file, stage_is_fresh
    from pipeline.runtime.guard import find_engine_record

    inputs = {"onnx": onnx_hash(onnx_path)}
    if plugins:
        inputs["plugins"] = sha256_file(plugins) if Path(plugins).is_file() else "missing"
    rec = find_engine_record(engine)
    gpu = env.gpu_info() or {}
    if (
        rec
        and stage_is_fresh(out_dir, stage_key(engine), inputs, settings, [engine])
        and rec.get("tensorrt") == env.trt_version()
        and rec.get("gpu") == gpu.get("name")
        and rec.get("compute_capability") == gpu.get("compute_capability")
    ):
        return rec
    return None


_SCRIPT = """#!/usr/bin/env bash
# Build {engine} from {onnx} on the target (written by `python -m pipeline build`).
# Engines are tied to one TensorRT version and GPU: build where you run (docs/tensorrt.md).
#   ./{name}            python -m pipeline engine (records the manifest the runtime checks)
#   ./{name} trtexec    the same engine with trtexec (no manifest record: `infer` then needs
#                        --skip-manifest-check)
# CAIT_PLUGINS overrides the plugin library; TRT_VERSION overrides the detected TensorRT;
# DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
cd "$(dirname "$0")"
run() {{ if [ -n "${{DRY_RUN:-}}" ]; then echo "$*"; else "$@"; fi; }}
MODE="${{1:-python}}"
PLUGINS="{plugins_default}"
TRT_VERSION="${{TRT_VERSION:-$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || echo {target})}}"
case "$MODE" in
  python)
    run python3 -m pipeline engine {onnx_q} -o {engine_q} {py_args} ${{PLUGINS:+--plugins "$PLUGINS"}}
    ;;
  trtexec)
    case "$TRT_VERSION" in
      1[1-9]*|[2-9][0-9]*)  # TensorRT 11+: strongly typed only, no --stronglyTyped (no-op there)
        run {trtexec11} ${{PLUGINS:+--staticPlugins="$PLUGINS"}} ;;
      *)                   # TensorRT 10.x: --stronglyTyped so that precision comes from the ONNX
        run {trtexec10} ${{PLUGINS:+--staticPlugins="$PLUGINS"}} ;;
    esac
    ;;
  *) echo "usage: $0 [python|trtexec]" >&2; exit 2 ;;
esac
"""


def write_build_script(
    onnx_path,
    out_dir,
    *,
    model=None,
    plugins=None,
    batch=(1, 8, 32),
    workspace="2G",
    opt_level=3,
    timing_cache=None,
    trt_target="10.3",
    needs_plugins=True,
) -> Path:
    """Write `<out_dir>/<stem>.build_engine.sh` (paths relative to out_dir) and return its path."""
    from pipeline.artifacts import write_text_atomic

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    model = model if model is not None else onnx.load(str(onnx_path), load_external_data=False)
    name_in, shape = onnx_input(model)
    engine = engine_path_for(onnx_path, out_dir)
    rel_onnx = os.path.relpath(onnx_path.resolve(), out_dir.resolve())
    rel_engine = engine.name
    cache = (
        os.path.relpath(Path(timing_cache).resolve(), out_dir.resolve()) if timing_cache else None
    )
    common = dict(
        input_name=name_in,
        input_shape=shape,
        batch=batch,
        workspace=workspace,
        opt_level=opt_level,
        timing_cache=cache,
        plugins=None,
    )
    line10 = quote(build_command(rel_onnx, rel_engine, target="10.3", **common))
    line11 = quote(build_command(rel_onnx, rel_engine, target="11.x", **common))
    py_args = (
        f"--batch {':'.join(map(str, batch))} --workspace {workspace} "
        f"--opt-level {int(opt_level)}" + (f" --timing-cache {cache}" if cache else "")
    )
    if plugins:
        plugins_default = f"${{CAIT_PLUGINS:-{Path(plugins).resolve()}}}"
    elif needs_plugins:
        plugins_default = (
            "${CAIT_PLUGINS:?the ONNX has plugin nodes: set CAIT_PLUGINS to "
            "libcait_trt_plugins.so (scripts/jetson_build.sh builds it)}"
        )
    else:
        plugins_default = "${CAIT_PLUGINS:-}"
    name = onnx_path.name.removesuffix(".onnx") + ".build_engine.sh"
    text = _SCRIPT.format(
        engine=rel_engine,
        onnx=rel_onnx,
        name=name,
        target=trt_target,
        plugins_default=plugins_default,
        onnx_q=quote([rel_onnx]),
        engine_q=quote([rel_engine]),
        py_args=py_args,
        trtexec10=line10,
        trtexec11=line11,
    )
    path = out_dir / name
    write_text_atomic(path, text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
