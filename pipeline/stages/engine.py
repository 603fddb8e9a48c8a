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
import os
from pathlib import Path

import onnx

from pipeline.artifacts import (
    StageRecord,
    candidate_path,
    engine_path,
    finish,
    onnx_hash,
    reuse,
    sha256_file,
)
from pipeline.contract import PLUGIN_OPS
from pipeline.errors import UserError
from pipeline.onnx_io import batched_input
from pipeline.trt import env
from pipeline.trt.check import required_compute
from pipeline.trt.choice import NOISE, Candidate, choose, median_ms, rule_text
from pipeline.trt.guard import find_engine_record
from pipeline.trt.script import PLUGIN_LIB, write_build_script, write_choice_script
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


# ---- the attention choice: several candidate engines, the fastest kept --------------------------


def choice_key(engine) -> str:
    """Manifest key of the attention choice behind an engine."""
    return f"attention/{Path(engine).name}"


def engine_choice_stage(
    main_onnx,
    candidates: list,
    out_dir,
    *,
    plugins=None,
    settings: EngineSettings = DEFAULTS,
    require_engine: bool = False,
    attention: str = "auto",
) -> StageRecord:
    """Build every candidate [(Candidate, onnx path)], time them at the opt batch and keep the
    fastest as `<stem>.engine` (the rule: pipeline/trt/choice.py); without TensorRT, write the
    script that does the same on the target and record the candidates as pending. Either way
    the choice's record (`attention/<engine>`) explains the rule, the candidates and, once
    measured, every timing."""
    main_onnx, out_dir = Path(main_onnx), Path(out_dir)
    engine = engine_path(main_onnx, out_dir)
    model = onnx.load(str(main_onnx), load_external_data=False)
    input_name, input_shape = batched_input(model)
    script = write_choice_script(
        main_onnx,
        out_dir,
        candidates,
        input_name=input_name,
        input_shape=input_shape,
        settings=settings,
        attention=attention,
        noise=NOISE,
        min_compute=required_compute(model),
    )
    pending = {
        "status": "pending",
        "engine": engine.name,
        "script": str(script),
        "rule": rule_text(),
        "opt_batch": settings.batch[1],
        "input": {"name": input_name, "shape": [-1, *input_shape]},
        "candidates": [_entry(c, p, engine, out_dir) for c, p in candidates],
        "inputs": {Path(p).name: onnx_hash(p) for _, p in candidates},
        "settings": settings.as_record(),
    }
    why = can_build_here()
    if why is None:
        return _measure_here(pending, candidates, engine, out_dir, plugins, settings)
    if require_engine:
        raise UserError(
            f"--require-engine: cannot build {engine.name} here ({why}); run "
            f"{script} on the target, or drop --require-engine"
        )
    names = ", ".join(c.name for c, _ in candidates)
    message = (
        f"engine: skipped ({why}) — run {script} on the target: it builds and times "
        f"the candidates ({names}) and keeps the fastest as {engine.name}"
    )
    print(message)
    return finish(
        out_dir,
        choice_key(engine),
        {**pending, "reason": why, "message": message},
        {"script": script},
    )


def _entry(candidate, onnx_path, engine, out_dir) -> dict:
    rel = lambda p: os.path.relpath(Path(p).resolve(), Path(out_dir).resolve())  # noqa: E731
    return {
        "name": candidate.name,
        "plugin_ops": sorted(candidate.plugin_ops),
        "onnx": rel(onnx_path),
        "engine": rel(candidate_path(engine, candidate.name, ".engine")),
        "times": rel(candidate_path(engine, candidate.name, ".times.json")),
    }


def _measure_here(pending, candidates, engine, out_dir, plugins, settings) -> StageRecord:
    from pipeline.runners.tensorrt import TrtRunner
    from pipeline.trt.build import build_engine

    if any(c.plugin_ops for c, _ in candidates) and not plugins:
        raise UserError(
            f"the candidates of {engine.name} include plugin nodes: pass --plugins "
            f"build/{PLUGIN_LIB}, or --attention onnx for a plugin-free engine"
        )
    medians, records = {}, {}
    for c, onnx_path in candidates:
        lib = plugins if c.plugin_ops else None
        path = candidate_path(engine, c.name, ".engine")
        records[c.name] = build_engine(onnx_path, path, plugins=lib, settings=settings)
        runner = TrtRunner(path, plugins=lib, cuda_graph=True, skip_manifest_check=True)
        medians[c.name] = median_ms(runner.benchmark(settings.batch[1]))
        del runner
        print(f"attention: {c.name:<11} {medians[c.name]:.3f} ms per batch of {settings.batch[1]}")
    return install_choice(
        out_dir,
        engine,
        pending,
        medians,
        records=records,
        measured_with=f"pipeline runner, TensorRT {env.trt_version()}",
    )


def install_choice(
    out_dir,
    engine,
    pending: dict,
    medians: dict[str, float],
    *,
    records=None,
    measured_with: str,
    plugins=None,
    trt_version: str | None = None,
) -> StageRecord:
    """Apply the rule to `medians`, move the winner's engine to `engine`, record the engine (so
    the runtime guard accepts it) and the choice with every timing. `records`: the build
    records of the candidates when built here; else (trtexec on the target) one is made from
    this machine's TensorRT and GPU."""
    out_dir, engine = Path(out_dir), Path(engine)
    entries = {e["name"]: e for e in pending["candidates"]}
    cands = [Candidate(n, frozenset(e["plugin_ops"])) for n, e in entries.items() if n in medians]
    choice = choose(cands, medians)
    win = entries[choice.winner]
    if (out_dir / win["engine"]).is_file():
        os.replace(out_dir / win["engine"], engine)
    elif pending.get("choice", {}).get("winner") != choice.winner or not engine.is_file():
        raise UserError(
            f"the engine of candidate {choice.winner} ({win['engine']}) is missing: "
            f"run {pending.get('script', 'the target script')} again"
        )
    rec = (records or {}).get(choice.winner) or _trtexec_record(
        out_dir / win["onnx"], pending["input"], plugins if win["plugin_ops"] else None, trt_version
    )
    rec = {
        **rec,
        "engine": engine.name,
        "attention": choice.winner,
        "settings": pending["settings"],
    }
    finish(out_dir, stage_key(engine), rec, {"engine": engine})
    not_built = sorted(set(entries) - set(medians))
    data = {
        **pending,
        "status": "chosen",
        "choice": choice.as_record(),
        "measured_with": measured_with,
        "not_built": not_built,
    }
    for row in choice.table:
        print(
            f"attention: {row['candidate']:<11} {row['median_ms']:.3f} ms "
            f"({row['vs_baseline']:.2f}× the baseline){'' if row['eligible'] else ', not eligible'}"
        )
    print(f"attention: kept {choice.reason} → {engine}")
    return finish(out_dir, choice_key(engine), data, {"engine": engine})


def _trtexec_record(onnx_path, image, plugins, trt_version) -> dict:
    """The engine record of an engine trtexec built on this machine."""
    gpu = env.gpu_info() or {}
    lib = Path(plugins).resolve() if plugins else None
    return {
        "status": "built",
        "builder": "trtexec",
        "onnx": str(onnx_path),
        "inputs": {"onnx": onnx_hash(onnx_path)},
        "tensorrt": env.trt_version() or trt_version,
        "gpu": gpu.get("name"),
        "compute_capability": gpu.get("compute_capability"),
        "plugin_library": {"path": str(lib), "sha256": sha256_file(lib)} if lib else None,
        "input": image,
    }
