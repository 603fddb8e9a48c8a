"""`infer`: classify images with a TensorRT engine, or an ONNX model on ONNX Runtime or
OpenVINO; print the top-k classes."""

from __future__ import annotations

from pipeline.runners import CPU_RUNTIMES, DEFAULT_CPU_RUNTIME, classify, open_backend


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--engine", help="TensorRT engine (checked against its manifest record)")
    src.add_argument("--onnx", help="ONNX model, run on --backend")
    p.add_argument(
        "--backend",
        choices=("auto", *CPU_RUNTIMES),
        default="auto",
        help="runtime of an --onnx model: auto (default: ONNX Runtime with CUDA where present, "
        f"else {DEFAULT_CPU_RUNTIME}, the faster on the CPU), onnxruntime, openvino",
    )
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--topk", type=int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--plugins", help="plugin library for the engine (default: the one recorded)")
    p.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay a CUDA graph")
    p.add_argument(
        "--skip-manifest-check",
        action="store_true",
        help="TensorRT: run an engine without a manifest record (e.g. built by trtexec)",
    )


def run(args) -> int:

    backend = open_backend(
        engine=args.engine,
        onnx=args.onnx,
        plugins=args.plugins,
        cuda_graph=args.cuda_graph,
        skip_manifest_check=args.skip_manifest_check,
        backend=args.backend,
    )
    for path, top in classify(backend, args.images, args.topk):
        print(f"{path} ({backend.name}):")
        for index, name, prob in top:
            print(f"  {prob:7.2%}  {name} ({index})")
    return 0
