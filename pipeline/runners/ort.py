"""An ONNX model on ONNX Runtime: CPU everywhere, CUDA when onnxruntime-gpu provides it.

Graphs with plugin nodes run their reference decomposition (attached as local functions), so
every ONNX stage of the ladder — the fused model included — runs on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.contract.reference import runnable
from pipeline.errors import UserError
from pipeline.onnx_io import CPU, image_input, load_onnx, ort_session

_PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _providers(providers) -> list[str]:
    """ "auto": CUDA when available, else CPU; None: CPU only; else the list as given."""
    if providers == "auto":
        import onnxruntime as ort

        available = ort.get_available_providers()
        return [p for p in _PREFERRED if p in available]
    return list(providers) if providers else list(CPU)


class OrtRunner:
    def __init__(
        self,
        path,
        *,
        name: str = "onnxruntime",
        taps: bool = False,
        providers=None,
        threads: int | None = None,
    ):
        self.name, self.path = name, Path(path)
        model = runnable(load_onnx(self.path))
        self.input_size = image_input(model).size
        self.tap_names: list[str] = []
        if taps:
            self.tap_names = [
                n.input[0] for n in model.graph.node if n.op_type == "LayerNormalization"
            ]
        self.providers = _providers(providers)
        try:
            self.sess = ort_session(
                model, extra_outputs=self.tap_names, threads=threads, providers=self.providers
            )
        except Exception as e:  # ORT raises its own types (Fail, InvalidGraph, …); one line
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise UserError(f"ONNX Runtime cannot load {path}: {msg}") from None
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.output_name = self.sess.get_outputs()[0].name

    def run(self, x: np.ndarray, taps: bool = False):
        names = [self.output_name] + (self.tap_names if taps else [])
        outs = self.sess.run(names, {self.input_name: x.astype(self.input_dtype, copy=False)})
        logits = np.asarray(outs[0], np.float32)
        return (logits, [o.astype(np.float32) for o in outs[1:]]) if taps else logits
