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

from pipeline.artifacts import engine_path, script_path, write_text_atomic
from pipeline.trt.settings import DEFAULTS, EngineSettings
from pipeline.trt.trtexec import build_command, quote

PLUGIN_LIB = "libcait_trt_plugins.so"

_SCRIPT = """#!/usr/bin/env bash
# Build {engine} from {onnx} on the target (written by `python -m pipeline build`).
# Engines are tied to one TensorRT version and GPU: build where you run (docs/tensorrt.md).
#   ./{name}            python -m pipeline engine (records the manifest the runtime checks)
#   ./{name} trtexec    the same engine with trtexec (no manifest record: `infer` then needs
#                        --skip-manifest-check)
# Plugin library: $CAIT_PLUGINS, else {lib} beside this script. TRT_VERSION overrides the
# detected TensorRT; DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
cd "$(dirname "$0")"
run() {{ if [ -n "${{DRY_RUN:-}}" ]; then echo "$*"; else "$@"; fi; }}
MODE="${{1:-python}}"
PLUGINS="${{CAIT_PLUGINS:-}}"
if [ -z "$PLUGINS" ] && [ -f {lib} ]; then PLUGINS="$PWD/{lib}"; fi
{require_plugins}{require_gpu}TRT_VERSION="${{TRT_VERSION:-$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || echo {target})}}"
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


# A model whose precision needs a newer GPU (FP8: compute capability >= 8.9) says so, and stops
# early where nvidia-smi reports an older one (Jetson has no nvidia-smi: TensorRT then refuses).
_REQUIRE_GPU = """# Needs a GPU of compute capability >= {compute} ({why}).
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 || true)"
if [ -n "$CC" ] && ! awk -v c="$CC" 'BEGIN {{ exit !(c + 0 >= {compute}) }}'; then
  echo "error: {onnx} needs compute capability >= {compute} ({why}); this GPU has $CC" >&2
  exit 2
fi
"""


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
    common = dict(
        input_name=input_name,
        input_shape=input_shape,
        batch=settings.batch,
        workspace=settings.workspace,
        opt_level=settings.opt_level,
        timing_cache=cache,
        plugins=None,
    )
    line10 = quote(build_command(rel_onnx, engine.name, target="10.3", **common))
    line11 = quote(build_command(rel_onnx, engine.name, target="11.x", **common))
    py_args = (
        f"--batch {settings.batch_text} --workspace {settings.workspace} "
        f"--opt-level {settings.opt_level}" + (f" --timing-cache {cache}" if cache else "")
    )
    path = script_path(onnx_path, out_dir)
    require = _REQUIRE.format(onnx=rel_onnx, lib=PLUGIN_LIB) if needs_plugins else ""
    text = _SCRIPT.format(
        engine=engine.name,
        onnx=rel_onnx,
        name=path.name,
        target=settings.target,
        lib=PLUGIN_LIB,
        require_plugins=require,
        require_gpu=_REQUIRE_GPU.format(compute=min_compute, onnx=rel_onnx, why="FP8 Q/DQ")
        if min_compute
        else "",
        onnx_q=quote([rel_onnx]),
        engine_q=quote([engine.name]),
        py_args=py_args,
        trtexec10=line10,
        trtexec11=line11,
    )
    write_text_atomic(path, text)
    return make_executable(path)
