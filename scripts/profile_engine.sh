#!/usr/bin/env bash
# Profile a TensorRT engine with trtexec, like for like on 10.x and 11.x, and print
# images/s, GPU compute percentiles and time per CaiT block kind.
#   scripts/profile_engine.sh ENGINE [BATCH] [extra `python -m pipeline profile` options]
# One implementation: this wraps `python -m pipeline profile` (pipeline/trt/profile.py).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 ENGINE [BATCH] [--plugins LIB] [--onnx MODEL] [--trtexec PATH]" >&2
  exit 2
fi
ENGINE="$1"; shift
BATCH=32
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then BATCH="$1"; shift; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! command -v trtexec >/dev/null 2>&1 && [ -x /usr/src/tensorrt/bin/trtexec ]; then
  PATH="/usr/src/tensorrt/bin:$PATH"  # JetPack installs trtexec here
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m pipeline profile "$ENGINE" --batch "$BATCH" "$@"
