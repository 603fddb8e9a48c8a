"""The build script left for the target when TensorRT is absent here: `<stem>.build_engine.sh`.

Engines are tied to one TensorRT version and GPU, so they are built where they run. The script
holds both builders' lines — `python -m pipeline engine` (records the manifest the runtime
checks) and trtexec for 10.x and 11.x — with paths relative to the artifact folder, so the
folder can be copied to the target as it is.

The plugin library is never a path of the build host: the script takes $CAIT_PLUGINS, else a
libcait_trt_plugins.so beside it, and stops with one line saying how to provide it when the ONNX
has plugin nodes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipeline.artifacts import (
    CANDIDATES,
    candidate_path,
    engine_path,
    script_path,
    write_text_atomic,
)
from pipeline.contract import SPECS
from pipeline.trt.settings import DEFAULTS, EngineSettings
from pipeline.trt.trtexec import benchmark_command, build_command, quote

PLUGIN_LIB = "libcait_trt_plugins.so"

# What every target script starts with: where it runs, DRY_RUN, the plugin library, TensorRT.
_PREAMBLE = """set -euo pipefail
cd "$(dirname "$0")"
run() {{ if [ -n "${{DRY_RUN:-}}" ]; then echo "$*"; else "$@"; fi; }}
PLUGINS="${{CAIT_PLUGINS:-}}"
if [ -z "$PLUGINS" ] && [ -f {lib} ]; then PLUGINS="$PWD/{lib}"; fi
{require_plugins}{require_gpu}TRT_VERSION="${{TRT_VERSION:-$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || echo {target})}}"
"""
_IS_11 = 'case "$TRT_VERSION" in 1[1-9]*|[2-9][0-9]*) TRT11=1 ;; *) TRT11= ;; esac\n'

_SCRIPT = """#!/usr/bin/env bash
# Build {engine} from {onnx} on the target (written by `python -m pipeline build`).
# Engines are tied to one TensorRT version and GPU: build where you run (docs/tensorrt.md).
#   ./{name}            python -m pipeline engine (records the manifest the runtime checks)
#   ./{name} trtexec    the same engine with trtexec (no manifest record: `infer` then needs
#                        --skip-manifest-check)
# Plugin library: $CAIT_PLUGINS, else {lib} beside this script. TRT_VERSION overrides the
# detected TensorRT; DRY_RUN=1 prints the command instead of running it.
{preamble}MODE="${{1:-python}}"
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

_REQUIRE = """if [ -z "$PLUGINS" ]; then
  echo "error: {onnx} has plugin nodes: set CAIT_PLUGINS to {lib} (scripts/jetson_build.sh builds it) or copy it beside this script" >&2
  exit 2
fi
"""


def _build_args(settings: EngineSettings, input_name, input_shape, timing_cache=None) -> dict:
    """build_command's arguments for `settings` (the plugin library is the script's to add)."""
    return dict(
        input_name=input_name,
        input_shape=input_shape,
        batch=settings.batch,
        workspace=settings.workspace,
        opt_level=settings.opt_level,
        timing_cache=timing_cache,
        plugins=None,
    )


# A model whose precision needs a newer GPU (FP8: compute capability >= 8.9) says so, and stops
# early where nvidia-smi reports an older one (Jetson has no nvidia-smi: TensorRT then refuses).
_REQUIRE_GPU = """# Needs a GPU of compute capability >= {compute} ({why}).
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 || true)"
if [ -n "$CC" ] && ! awk -v c="$CC" 'BEGIN {{ exit !(c + 0 >= {compute}) }}'; then
  echo "error: {onnx} needs compute capability >= {compute} ({why}); this GPU has $CC" >&2
  exit 2
fi
"""


def _require_gpu(min_compute: str | None, rel_onnx: str) -> str:
    """The script's early stop on a GPU older than the model needs ("" when any GPU will do)."""
    if not min_compute:
        return ""
    return _REQUIRE_GPU.format(compute=min_compute, onnx=rel_onnx, why="FP8 Q/DQ")


def make_executable(path: Path) -> Path:
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write_build_script(
    onnx_path,
    out_dir,
    *,
    input_name: str,
    input_shape: tuple[int, ...],
    settings: EngineSettings = DEFAULTS,
    needs_plugins: bool = True,
    min_compute: str | None = None,
) -> Path:
    """Write `<out_dir>/<stem>.build_engine.sh` (paths relative to out_dir) and return its path.
    `min_compute`: the least compute capability the model needs (FP8: "8.9"), checked first."""
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    engine = engine_path(onnx_path, out_dir)
    rel_onnx = os.path.relpath(onnx_path.resolve(), out_dir.resolve())
    cache = (
        os.path.relpath(Path(settings.timing_cache).resolve(), out_dir.resolve())
        if settings.timing_cache
        else None
    )
    common = _build_args(settings, input_name, input_shape, cache)
    line10 = quote(build_command(rel_onnx, engine.name, target="10.3", **common))
    line11 = quote(build_command(rel_onnx, engine.name, target="11.x", **common))
    py_args = (
        f"--batch {settings.batch_text} --workspace {settings.workspace} "
        f"--opt-level {settings.opt_level}" + (f" --timing-cache {cache}" if cache else "")
    )
    path = script_path(onnx_path, out_dir)
    require = _REQUIRE.format(onnx=rel_onnx, lib=PLUGIN_LIB) if needs_plugins else ""
    preamble = _PREAMBLE.format(
        lib=PLUGIN_LIB,
        require_plugins=require,
        require_gpu=_require_gpu(min_compute, rel_onnx),
        target=settings.target,
    )
    text = _SCRIPT.format(
        engine=engine.name,
        onnx=rel_onnx,
        name=path.name,
        lib=PLUGIN_LIB,
        preamble=preamble,
        onnx_q=quote([rel_onnx]),
        engine_q=quote([engine.name]),
        py_args=py_args,
        trtexec10=line10,
        trtexec11=line11,
    )
    write_text_atomic(path, text)
    return make_executable(path)


_AB = """#!/usr/bin/env bash
# Choose how the fused ops of {onnx} run on this target, by measurement (written by
# `python -m pipeline build --attention {attention}`). Every candidate below is built with
# trtexec and timed like for like at the profile's opt batch ({batch}): the same flags, a
# warm-up, CUDA graphs, spin-wait, no data transfers. `python -m pipeline choose` then applies
# the rule (pipeline/trt/choice.py: a plugin engine must beat its plugin-free twin by more than
# {noise}), keeps the winner as {engine} and records every timing and the choice in
# manifest.json. Engines are tied to one TensorRT version and GPU: run this where you deploy.
# Candidates (plugin ops): {listing}
# Plugin library: $CAIT_PLUGINS, else {lib} beside this script; without it only the candidates
# that need no plugin are built. TRT_VERSION overrides the detected TensorRT; DRY_RUN=1 prints
# the commands instead of running them.
{preamble}{is11}mkdir -p {folder}
left_out() {{  # a candidate that fails to build or time is no candidate: the others still compete
  echo "note: candidate $1 failed to build or time: left out of the choice" >&2
  rm -f "{folder}/{stem}.$1.engine" "{folder}/{stem}.$1.times.json"
}}
{candidates}run python3 -m pipeline choose {engine_q} --trt "$TRT_VERSION" ${{PLUGINS:+--plugins "$PLUGINS"}}
"""

_CANDIDATE = """# candidate {name}: {what}
{guard_open}if [ -n "$TRT11" ]; then
{indent}  run {build11}{lib} && run {bench11}{lib} || left_out {name}
{indent}else
{indent}  run {build10}{lib} && run {bench10}{lib} || left_out {name}
{indent}fi
{guard_close}"""

_GUARD_OPEN = 'if [ -n "$PLUGINS" ]; then\n  '
_GUARD_CLOSE = (
    'else\n  echo "note: candidate {name} skipped: it needs the plugin library (set CAIT_PLUGINS)"'
    " >&2\nfi\n"
)


def write_choice_script(
    main_onnx,
    out_dir,
    candidates: list,
    *,
    input_name: str,
    input_shape: tuple[int, ...],
    settings: EngineSettings = DEFAULTS,
    attention: str = "auto",
    noise: float,
    min_compute: str | None = None,
) -> Path:
    """Write `<out_dir>/<stem>.build_engine.sh` that builds, times and chooses among `candidates`
    [(Candidate, onnx path)] on the target (paths relative to out_dir); return its path.
    `min_compute`: the least compute capability the model needs (FP8: "8.9"), checked first."""
    main_onnx, out_dir = Path(main_onnx), Path(out_dir)
    engine = engine_path(main_onnx, out_dir)
    opt = settings.batch[1]
    build_args = _build_args(settings, input_name, input_shape)
    blocks = []
    for c, onnx_path in candidates:
        rel_onnx = os.path.relpath(Path(onnx_path).resolve(), out_dir.resolve())
        cand_engine = os.path.relpath(candidate_path(engine, c.name, ".engine"), out_dir)
        times = os.path.relpath(candidate_path(engine, c.name, ".times.json"), out_dir)
        lines = {}
        for v, target in (("10", "10.3"), ("11", "11.x")):
            lines[f"build{v}"] = quote(
                build_command(rel_onnx, cand_engine, target=target, **build_args)
            )
            lines[f"bench{v}"] = quote(
                benchmark_command(
                    cand_engine,
                    target=target,
                    input_name=input_name,
                    input_shape=input_shape,
                    batch=opt,
                    times_path=times,
                )
            )
        needs = bool(c.plugin_ops)
        what = ", ".join(sorted(c.plugin_ops)) + " as plugins" if needs else "no plugin"
        blocks.append(
            _CANDIDATE.format(
                name=c.name,
                what=what,
                **lines,
                lib=' --staticPlugins="$PLUGINS"' if needs else "",
                guard_open=_GUARD_OPEN if needs else "",
                indent="  " if needs else "",
                guard_close=_GUARD_CLOSE.format(name=c.name) if needs else "",
            )
        )
    listing = "; ".join(
        f"{c.name} ({', '.join(sorted(SPECS[o].short for o in c.plugin_ops)) or 'none'})"
        for c, _ in candidates
    )
    path = script_path(main_onnx, out_dir)
    text = _AB.format(
        onnx=os.path.relpath(main_onnx.resolve(), out_dir.resolve()),
        attention=attention,
        batch=opt,
        noise=f"{noise:.0%}",
        engine=engine.name,
        engine_q=quote([engine.name]),
        listing=listing,
        lib=PLUGIN_LIB,
        folder=CANDIDATES,
        stem=engine.name.removesuffix(".engine"),
        is11=_IS_11,
        preamble=_PREAMBLE.format(
            lib=PLUGIN_LIB,
            require_plugins="",
            require_gpu=_require_gpu(
                min_compute, os.path.relpath(main_onnx.resolve(), out_dir.resolve())
            ),
            target=settings.target,
        ),
        candidates="".join(blocks),
    )
    write_text_atomic(path, text)
    return make_executable(path)
