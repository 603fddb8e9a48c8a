#!/usr/bin/env bash
# GPU self-test of the cait plugins, for a machine with a CUDA GPU (TensorRT optional):
#   1. builds and runs cait_kernel_selftest: each kernel on every preset shape against a float64
#      host reference, CUDA-graph replay, achieved GB/s against the analytic minimum bytes;
#   2. if TensorRT imports in Python and tests/gpu/ exists, builds libcait_trt_plugins.so and
#      runs `pytest tests/gpu`.
# Usage: scripts/gpu_selftest.sh [selftest args, e.g. --batch 16 --iters 50]
# Env:   CUDA_ARCHS (default: the GPU's own, from nvidia-smi), PYTHON (default .venv/bin/python),
#        TENSORRT_ROOT (for the plugin library), JOBS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_selftest: no CUDA GPU visible (nvidia-smi -L failed)" >&2
    exit 2
fi
if [ -z "${CUDA_ARCHS:-}" ]; then
    # compute_cap "8.7" -> 87; only the GPU at hand, to keep the build short
    CUDA_ARCHS=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
fi
echo "== building cait_kernel_selftest for sm_${CUDA_ARCHS}"
cmake -S "$ROOT" -B "$ROOT/build/gpu-selftest" -DCAIT_BUILD_PLUGINS=OFF -DCAIT_BUILD_SELFTEST=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build/gpu-selftest" --target cait_kernel_selftest -j "$JOBS"

echo "== cait_kernel_selftest $*"
"$ROOT/build/gpu-selftest/cait_kernel_selftest" "$@"

if [ ! -d "$ROOT/tests/gpu" ]; then
    echo "== tests/gpu absent: TensorRT tests skipped"
    exit 0
fi
if ! "$PYTHON" -c "import tensorrt" >/dev/null 2>&1; then
    echo "== tensorrt does not import in $PYTHON: tests/gpu skipped"
    exit 0
fi
echo "== building libcait_trt_plugins.so"
# build/ itself: pipeline/trt/stage.py and tests/gpu default to build/libcait_trt_plugins.so
cmake -S "$ROOT" -B "$ROOT/build" -DCAIT_BUILD_PLUGINS=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$PYTHON" >/dev/null
cmake --build "$ROOT/build" --target cait_trt_plugins -j "$JOBS"
export CAIT_PLUGINS="$ROOT/build/libcait_trt_plugins.so"
echo "== pytest tests/gpu (CAIT_PLUGINS=$CAIT_PLUGINS)"
"$PYTHON" -m pytest "$ROOT/tests/gpu" -q
