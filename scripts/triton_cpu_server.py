"""A real Triton server hosting the project's CPU runtime: PyTriton's bundled `tritonserver`
serves the ONNX model on ONNX Runtime under the classifier's name, with the classifier's I/O.

    .venv-triton/bin/python scripts/triton_cpu_server.py engines/m/fp32/model.onnx --name m \
        [--http-port 8000] [--grpc-port 8001] [--max-batch 32]
    .venv-triton/bin/python scripts/triton_cpu_server.py --repository DIR    # serve DIR as it is

For trying `eval --backend triton` / `parity --url` without a GPU, and for the live test
(tests/runners/test_triton.py). It listens on 127.0.0.1 only and stops on SIGINT/SIGTERM.
Its venv (`make test` creates .venv-triton from scripts/triton_cpu_server.requirements.txt) is
apart from the main one because PyTriton pins numpy < 2.

Why LD_LIBRARY_PATH is set below: PyTriton's Python-backend stub links `libpython3.X.so.1.0` by
soname only, so the loader finds the system's copy (Debian's 3.11.2) while the interpreter's
standard library is this Python's (pyenv's 3.11.7 here); the stub then fails in `threading`
(`'_thread.RLock' object has no attribute '_recursion_count'`). Putting this interpreter's own
LIBDIR first makes the library and the standard library one version again.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import sysconfig
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.onnx_io import image_input, load_onnx  # noqa: E402
from pipeline.runners.ort import OrtRunner  # noqa: E402
from pipeline.serving.triton import model_names  # noqa: E402
from pipeline.trt.settings import DEFAULTS  # noqa: E402


def _own_libpython_first() -> None:
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir:
        rest = os.environ.get("LD_LIBRARY_PATH", "")
        os.environ["LD_LIBRARY_PATH"] = libdir + (os.pathsep + rest if rest else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx", nargs="?", help="the model to serve as <name>_trt")
    p.add_argument("--name", help="repository name; serves <name>_trt")
    p.add_argument(
        "--repository",
        help="serve this model repository instead (every model in it needs the Python backend)",
    )
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--max-batch", type=int, default=DEFAULTS.batch[2])
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = p.parse_args(argv)
    if (args.repository is None) == (args.onnx is None) or (args.onnx and not args.name):
        p.error("give ONNX --name NAME, or --repository DIR")

    _own_libpython_first()
    from pytriton.triton import Triton, TritonConfig

    config = TritonConfig(
        model_repository=Path(args.repository).resolve() if args.repository else None,
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        allow_metrics=False,
        exit_timeout_secs=2,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Triton(config=config) as triton:
        if args.onnx:
            _bind(triton, args)
        triton.run()
        what = args.repository or model_names(args.name)["classifier"]
        print(f"serving {what} on 127.0.0.1:{args.http_port} (HTTP), :{args.grpc_port} (gRPC)")
        sys.stdout.flush()
        stop.wait()
    return 0


def _bind(triton, args) -> None:
    """Serve the ONNX on ONNX Runtime as <name>_trt, with the classifier's I/O."""
    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    model = load_onnx(args.onnx)
    image = image_input(model)
    out = model.graph.output[0]
    classes = out.type.tensor_type.shape.dim[-1].dim_value
    runner = OrtRunner(args.onnx, threads=args.threads)

    @batch
    def infer(**inputs):
        return {out.name: runner.run(inputs[image.name])}

    triton.bind(
        model_name=model_names(args.name)["classifier"],
        infer_func=infer,
        inputs=[
            Tensor(
                name=image.name, dtype=np.float32, shape=(image.channels, image.size, image.size)
            )
        ],
        outputs=[Tensor(name=out.name, dtype=np.float32, shape=(classes,))],
        config=ModelConfig(max_batch_size=args.max_batch, batcher=DynamicBatcher()),
        strict=True,
    )


if __name__ == "__main__":
    sys.exit(main())
