"""ONNX Runtime backend: CPU everywhere, CUDA when onnxruntime-gpu provides it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError

_PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, onnx_path, providers=None):
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise UserError(f"ONNX model {path} not found")
        available = ort.get_available_providers()
        self.providers = list(providers) if providers else [p for p in _PREFERRED if p in available]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=self.providers)
        except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, …)
            msg = str(e).splitlines()[0][:300]
            hint = ""
            if "CaitTalkingHeadsAttention" in str(e) or "CaitClassAttention" in str(e):
                hint = (
                    "; plugin nodes run only in TensorRT: use model.onnx, the fp16/int8 model "
                    "or the fused model's verification copy (with function bodies)"
                )
            raise UserError(f"ONNX Runtime cannot load {path}: {msg}{hint}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        size = inp.shape[-1]
        if not isinstance(size, int):
            raise UserError(f"{path}: input {inp.name} has a dynamic image size {inp.shape}")
        self.input_size = size

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: batch.astype(self.input_dtype, copy=False)})
        return np.asarray(out[0], dtype=np.float32)
