"""Engine stage: build `<stem>.engine` here if TensorRT and a GPU are present, otherwise leave the
ready script that builds it on the target (engines are built where they run).

    engine_stage(onnx_path, out_dir, *, plugins=None, settings=DEFAULTS, require_engine=False)
        -> StageRecord

- onnx_path: the model to build (model.fp16.onnx, model.int8.onnx, model.fused.onnx, …)
- out_dir: the artifact folder; the engine and `<stem>.build_engine.sh` go there
- plugins: path of libcait_trt_plugins.so (required to build here when the ONNX has plugin
  nodes; the script takes $CAIT_PLUGINS or the library beside it)
- settings: `EngineSettings` (profile, workspace, optimization level, timing cache, target)
- require_engine: without TensorRT, raise UserError instead of skipping

Always writes the script (an artifact folder copied to a target can rebuild there). The record,
under `engine/<file>` in the manifest: {"status": "built"|"skipped", "engine", "script", "onnx",
"inputs", "settings", "message", …}; a built record also carries "tensorrt", "gpu",
"compute_capability", "plugin_library" (what the runtime guard compares). Prints one status line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from pipeline.artifacts import StageRecord, engine_path, finish, onnx_hash, reuse, sha256_file
from pipeline.contract import PLUGIN_OPS
from pipeline.errors import UserError
from pipeline.onnx_io import batched_input
from pipeline.trt import env
from pipeline.trt.check import required_compute
from pipeline.trt.guard import find_engine_record
from pipeline.trt.script import PLUGIN_LIB, write_build_script
from pipeline.trt.settings import DEFAULTS, EngineSettings
from pipeline.trt.versions import refuse_fp8

log = logging.getLogger(__name__)


def stage_key(engine) -> str:
    """Manifest key of an engine record: one per engine file, several engines per folder."""
    return f"engine/{Path(engine).name}"


def has_plugin_nodes(model) -> bool:
    return any(n.op_type in PLUGIN_OPS for n in model.graph.node)


def can_build_here() -> str | None:
    """None when this machine can build engines; else why not ("no TensorRT", "no CUDA GPU")."""
    if not env.has_builder():
        return "no TensorRT"
    return None if env.gpu_info() is not None else "no CUDA GPU"


def engine_stage(
    onnx_path,
    out_dir,
    *,
    plugins=None,
    settings: EngineSettings = DEFAULTS,
    require_engine: bool = False,
) -> StageRecord:
    """See the module docstring."""
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    engine = engine_path(onnx_path, out_dir)
    model = onnx.load(str(onnx_path), load_external_data=False)
    plugin_nodes = has_plugin_nodes(model)
    input_name, input_shape = batched_input(model)
    min_compute = required_compute(model)
    script = write_build_script(
        onnx_path,
        out_dir,
        input_name=input_name,
        input_shape=input_shape,
        settings=settings,
        needs_plugins=plugin_nodes,
        min_compute=min_compute,
    )
    key, record_settings = stage_key(engine), settings.as_record()
    why = can_build_here()
    if why is None:
        gpu = env.gpu_info() or {}
        if min_compute and gpu.get("compute_capability"):
            refuse_fp8(settings.target, gpu["compute_capability"])
        return _build(onnx_path, out_dir, engine, script, plugins, settings, plugin_nodes)
    if require_engine:
        raise UserError(
            f"--require-engine: cannot build {engine.name} here ({why}); run "
            f"{script} on the target, or drop --require-engine"
        )
    message = f"engine: skipped ({why}) — run {script} on the target"
    print(message)
    data = {
        "status": "skipped",
        "reason": why,
        "engine": engine.name,
        "script": str(script),
        "onnx": onnx_path.name,
        "inputs": {"onnx": onnx_hash(onnx_path)},
        "settings": record_settings,
        "message": message,
    }
    return finish(out_dir, key, data, {"script": script})


def _build(onnx_path, out_dir, engine, script, plugins, settings, plugin_nodes) -> StageRecord:
    from pipeline.trt.build import build_engine

    if plugin_nodes and not plugins:
        raise UserError(
            f"{onnx_path.name} has plugin nodes: pass --plugins "
            f"build/{PLUGIN_LIB} (or fuse with `--attention onnx` for a "
            "plugin-free model)"
        )
    inputs = {"onnx": onnx_hash(onnx_path)}
    if plugins:
        inputs["plugins"] = sha256_file(plugins) if Path(plugins).is_file() else "missing"
    key = stage_key(engine)
    fresh = reuse(out_dir, key, inputs, settings.as_record(), {"engine": engine})
    if fresh is not None and _same_machine(engine):
        fresh.data["message"] = (
            f"engine: {engine} is up to date (same ONNX, plugins, settings, "
            f"TensorRT {fresh['tensorrt']} and GPU)"
        )
        print(fresh["message"])
        return fresh
    data = build_engine(onnx_path, engine, plugins=plugins, settings=settings)
    data.update(script=str(script), inputs=inputs, settings=settings.as_record())
    data["message"] = f"engine: built {engine} (TensorRT {data['tensorrt']}, {data['gpu']})"
    print(data["message"])
    return finish(out_dir, key, data, {"engine": engine, "script": script})


def _same_machine(engine) -> bool:
    """An engine record is only reusable on the TensorRT and GPU that built it."""
    rec = find_engine_record(engine) or {}
    gpu = env.gpu_info() or {}
    return (
        rec.get("tensorrt") == env.trt_version()
        and rec.get("gpu") == gpu.get("name")
        and rec.get("compute_capability") == gpu.get("compute_capability")
    )
