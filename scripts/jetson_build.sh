#!/usr/bin/env bash
# Build the plugin library and a TensorRT engine on a Jetson running JetPack 6 (TensorRT 10.3,
# CUDA 12.6, Orin = sm_87). Copy the ONNX here, never an engine (docs/jetson.md explains why).
#
#   scripts/jetson_build.sh MODEL.onnx [OUT_DIR]
#
# Environment (defaults in brackets):
#   MODE        python | trtexec   [python if `import tensorrt, onnx, polygraphy` works, else trtexec]
#   BATCH       min:opt:max        [1:8:32]   (Orin Nano 8 GB: try 1:4:8)
#   WORKSPACE   pool limit         [2G]
#   OPT_LEVEL   0-5                [3]
#   CUDA_ARCH   CMAKE_CUDA_ARCHITECTURES [87]
#   TENSORRT_ROOT                  [/usr]     (JetPack installs TensorRT under /usr)
#   BUILD_DIR   CMake build folder [build/jetson]
#   PLUGINS     an already built libcait_trt_plugins.so (skips CMake), or `none` for the
#               plugin-free fallback model (build --attention onnx)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ONNX="${1:?usage: $0 MODEL.onnx [OUT_DIR]}"
OUT="${2:-$(dirname "$ONNX")}"
BATCH="${BATCH:-1:8:32}"
WORKSPACE="${WORKSPACE:-2G}"
OPT_LEVEL="${OPT_LEVEL:-3}"
CUDA_ARCH="${CUDA_ARCH:-87}"
TENSORRT_ROOT="${TENSORRT_ROOT:-/usr}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/jetson}"
export PATH="/usr/local/cuda/bin:/usr/src/tensorrt/bin:$PATH"   # nvcc and trtexec on JetPack
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

[ -f "$ONNX" ] || { echo "error: $ONNX not found" >&2; exit 2; }
if [ ! -f /etc/nv_tegra_release ]; then
  echo "warning: /etc/nv_tegra_release missing: this does not look like a Jetson" >&2
fi

# --- which TensorRT is this? (the engine is only valid for exactly this version) ---------------
TRT_VERSION="$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null \
  || dpkg-query -W -f='${Version}' libnvinfer10 2>/dev/null | cut -d- -f1 || true)"
echo "TensorRT: ${TRT_VERSION:-unknown}; CUDA: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
case "$TRT_VERSION" in
  10.3.*) ;;
  "") echo "warning: cannot tell the TensorRT version (python3-libnvinfer not installed?)" >&2 ;;
  *)  echo "warning: JetPack 6 ships TensorRT 10.3; found $TRT_VERSION — the engine will be built for it" >&2 ;;
esac

# --- 1. plugin library with CMake (explicit architecture: Orin only, fast to compile) ---------
if [ -z "${PLUGINS:-}" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DTENSORRT_ROOT="$TENSORRT_ROOT" \
    -DCAIT_BUILD_PLUGINS=ON
  cmake --build "$BUILD_DIR" --target cait_trt_plugins -j"$(nproc)"
  PLUGINS="$(find "$BUILD_DIR" -name libcait_trt_plugins.so -print -quit)"
  [ -n "$PLUGINS" ] || { echo "error: CMake built no libcait_trt_plugins.so (TensorRT headers found? see the CMake log)" >&2; exit 1; }
fi
if [ "$PLUGINS" = none ]; then
  PLUGINS=""
  echo "plugins: none (plugin-free model)"
else
  PLUGINS="$(readlink -f "$PLUGINS")"
  echo "plugins: $PLUGINS"
fi

# --- 2. static check against TensorRT 10.3's ONNX parser (no GPU needed) ----------------------
if python3 -c 'import onnx' 2>/dev/null; then
  python3 -m pipeline check "$ONNX" --trt "${TRT_VERSION:-10.3}"
fi

# --- 3. the engine, on this device -------------------------------------------------------------
ENGINE="$OUT/$(basename "${ONNX%.onnx}").engine"
mkdir -p "$OUT"
if [ -z "${MODE:-}" ]; then
  if python3 -c 'import tensorrt, onnx, polygraphy' 2>/dev/null; then MODE=python; else MODE=trtexec; fi
fi
if [ "$MODE" = python ]; then
  python3 -m pipeline engine "$ONNX" -o "$ENGINE" ${PLUGINS:+--plugins "$PLUGINS"} \
    --batch "$BATCH" --workspace "$WORKSPACE" --opt-level "$OPT_LEVEL" \
    --timing-cache "$OUT/timing.cache"
else
  IN_NAME="$(python3 - "$ONNX" <<'PY' 2>/dev/null || echo image
import sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
inits = {i.name for i in m.graph.initializer}
print(next(i.name for i in m.graph.input if i.name not in inits))
PY
)"
  SIZE="${SIZE:-224}"   # the preset's image size (384/448 for the *_384/*_448 presets)
  IFS=: read -r BMIN BOPT BMAX <<<"$BATCH"
  # TensorRT 10.3: --stronglyTyped so that precision comes from the ONNX; never --fp16/--int8.
  trtexec --onnx="$ONNX" --saveEngine="$ENGINE" \
    --minShapes="$IN_NAME:${BMIN}x3x${SIZE}x${SIZE}" --optShapes="$IN_NAME:${BOPT}x3x${SIZE}x${SIZE}" \
    --maxShapes="$IN_NAME:${BMAX}x3x${SIZE}x${SIZE}" --memPoolSize=workspace:"$WORKSPACE" \
    --builderOptimizationLevel="$OPT_LEVEL" --noTF32 --profilingVerbosity=detailed \
    --skipInference --stronglyTyped --timingCacheFile="$OUT/timing.cache" \
    ${PLUGINS:+--staticPlugins="$PLUGINS"}
  echo "note: built with trtexec: no manifest record; run infer with --skip-manifest-check" >&2
fi
echo "engine: $ENGINE"
echo "profile: scripts/profile_engine.sh $ENGINE 8${PLUGINS:+ --plugins $PLUGINS}"
