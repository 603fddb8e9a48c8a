"""The class token's attention in the last class-attention layer, per head: the maps the CaiT
paper draws, read from a deployed ONNX model and from the Paddle reference.

    maps = OnnxAttention(path).run(x)              # (B, H, T), T = N + 1, each row sums to 1
    maps = PaddleAttention(preset, weights).run(x)

ONNX: a CPU copy of the model with the fused nodes replaced by their reference decomposition
(`contract.reference.inline_reference`; a plain export is read as it is) and the last Softmax —
the last class-attention layer's, the last attention in a CaiT — added as an output. An fp16
model gives its fp16 probabilities, widened. Paddle: a forward pre-hook on the last
`ClassAttention` layer calls its own `attention()`, the computation its forward uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.contract import DOMAIN
from pipeline.contract.reference import inline_reference
from pipeline.errors import UserError
from pipeline.onnx_io import image_input, load_onnx, ort_session


class OnnxAttention:
    def __init__(self, path, *, threads: int | None = None):
        self.path = Path(path)
        model = load_onnx(self.path)
        if any(n.domain == DOMAIN for n in model.graph.node):
            model = inline_reference(model)
        self.input_size = image_input(model).size
        softmax = [n.output[0] for n in model.graph.node if n.op_type == "Softmax"]
        if not softmax:
            raise UserError(f"{self.path} has no Softmax: not a CaiT attention graph")
        self.tensor = softmax[-1]
        self.sess = ort_session(model, extra_outputs=[self.tensor], threads=threads)
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32

    def run(self, x: np.ndarray) -> np.ndarray:
        (maps,) = self.sess.run([self.tensor], {self.input_name: x.astype(self.input_dtype)})
        return _per_head(np.asarray(maps, np.float32), self.path.name)


class PaddleAttention:
    def __init__(self, preset, weights=None, seed: int = 0):
        from pipeline.models import load_model
        from pipeline.models.cait import ClassAttention

        self.model, _ = load_model(preset, weights, seed)
        self.input_size = preset.img_size
        layers = [m for m in self.model.sublayers() if isinstance(m, ClassAttention)]
        layers[-1].register_forward_pre_hook(self._hook)
        self._maps = None

    def _hook(self, layer, inputs):
        self._maps = layer.attention(inputs[0]).numpy()

    def run(self, x: np.ndarray) -> np.ndarray:
        import paddle

        with paddle.no_grad():
            self.model(paddle.to_tensor(np.ascontiguousarray(x, np.float32)))
        return _per_head(self._maps, "the Paddle reference")


def _per_head(maps: np.ndarray, where: str) -> np.ndarray:
    """(B, H, 1, T) → (B, H, T); anything else is not a class-attention map."""
    if maps.ndim != 4 or maps.shape[2] != 1:
        raise UserError(
            f"the last Softmax of {where} has shape {list(maps.shape)}, not (B, H, 1, T): "
            "not a CaiT class-attention layer"
        )
    return maps[:, :, 0, :]
