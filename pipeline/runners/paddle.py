"""The Paddle reference model as a runner (the top rung of the parity ladder)."""

from __future__ import annotations

import numpy as np


class PaddleRunner:
    name = "paddle"

    def __init__(self, preset, weights, seed=0, taps=False):
        from pipeline.models import load_model

        self.model, _ = load_model(preset, weights, seed)
        self.path = None
        self.input_size = preset.img_size
        self._taps: list[np.ndarray] = []
        if taps:
            import paddle.nn as nn

            for layer in self.model.sublayers():
                if isinstance(layer, nn.LayerNorm):
                    layer.register_forward_pre_hook(self._hook)

    def _hook(self, layer, inputs):
        self._taps.append(inputs[0].numpy())

    def run(self, x: np.ndarray, taps: bool = False):
        import paddle

        self._taps = []
        with paddle.no_grad():
            logits = self.model(paddle.to_tensor(np.ascontiguousarray(x, np.float32))).numpy()
        return (logits, list(self._taps)) if taps else logits
