"""An ONNX model on OpenVINO's CPU plugin: the x86 edge runtime beside ONNX Runtime.

It reads the same ONNX files as the ONNX Runtime runner. OpenVINO's ONNX frontend does not
convert ONNX local functions, so a graph with plugin nodes runs their reference decomposition
inlined (`contract.reference.inline_reference`: the plugin-free graph `--attention onnx` builds);
a plugin-free graph is read as it is.

Settings, each for a reason:
- `INFERENCE_PRECISION_HINT f32`: on CPUs with AVX512-BF16 or AMX OpenVINO computes in bf16 by
  default, which would break the 1e-4 agreement with Paddle that fp32 promises. A model that is
  fp16 or Q/DQ in the ONNX keeps its own precision (the hint only stops a silent down-cast).
- `PERFORMANCE_HINT LATENCY`: one request at a time, all threads on it — how `infer` runs.
- `INFERENCE_NUM_THREADS`: the caller's thread count (OpenVINO's default is every core).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.contract import DOMAIN
from pipeline.contract.reference import inline_reference
from pipeline.errors import UserError
from pipeline.onnx_io import image_input, load_onnx


def openvino_module():
    """The `openvino` module, or a UserError that says how to get it."""
    try:
        import openvino
    except ImportError:
        raise UserError(
            "the openvino backend needs the `openvino` package: pip install openvino "
            "(`make build` installs it)"
        ) from None
    return openvino


class OpenVinoRunner:
    def __init__(
        self, path, *, name: str = "openvino", taps: bool = False, threads: int | None = None
    ):
        ov = openvino_module()
        self.name, self.path = name, Path(path)
        model = load_onnx(self.path)
        if any(n.domain == DOMAIN for n in model.graph.node):
            model = inline_reference(model)
        self.input_size = image_input(model).size
        self.tap_names: list[str] = []
        if taps:
            self.tap_names = [
                n.input[0] for n in model.graph.node if n.op_type == "LayerNormalization"
            ]
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            ov_model = core.read_model(model.SerializeToString(), b"")
            if self.tap_names:
                ov_model.add_outputs(self.tap_names)
            self.compiled = core.compile_model(ov_model, "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError with a multi-line report
            raise UserError(f"OpenVINO cannot load {self.path}: {_first_reason(e)}") from None
        inp = self.compiled.inputs[0]
        self.input_dtype = (
            np.float16 if inp.get_element_type().get_type_name() == "f16" else (np.float32)
        )
        self.request = self.compiled.create_infer_request()

    def run(self, x: np.ndarray, taps: bool = False):
        result = self.request.infer({0: x.astype(self.input_dtype, copy=False)})
        outs = [result[o] for o in self.compiled.outputs]
        logits = np.asarray(outs[0], np.float32)
        if not taps:
            return logits
        return logits, [np.asarray(o, np.float32) for o in outs[1 : 1 + len(self.tap_names)]]


def _first_reason(e: Exception) -> str:
    """The line of OpenVINO's report that names the failure (it starts with a C++ location)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for key in ("No conversion rule", "Conversion is failed", "with a message", "Check "):
        hit = next((ln for ln in lines if key in ln), None)
        if hit:
            return hit[:300]
    return (lines[-1] if lines else type(e).__name__)[:300]
