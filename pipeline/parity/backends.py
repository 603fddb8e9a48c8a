"""One way to run any stage of the ladder: `open_stage(name, out_dir, …).run(x) -> logits`.

ONNX stages run on ONNX Runtime (CPU); graphs with plugin nodes get their reference decomposition
as local functions first (ORT refuses custom ops without a body, design §8). `taps=True` also
returns the input of every LayerNormalization in execution order: the same checkpoints exist in
Paddle (forward pre-hooks on its LayerNorms) and in every ONNX stage (fp16/int8 keep LayerNorm,
fused graphs keep it too), so `--bisect` can align stages without relying on tensor names.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

log = logging.getLogger(__name__)

# ladder order; file names inside the artifact directory
ONNX_STAGES = {
    "onnx": "model.onnx",
    "fused": "model.fused.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
}
BACKENDS = ("paddle", *ONNX_STAGES, "engine")


def present_stages(out_dir: str | Path) -> list[tuple[str, Path | None]]:
    """[(stage, artifact)] for Paddle and every artifact found in `out_dir`, in ladder order."""
    out_dir = Path(out_dir)
    found: list[tuple[str, Path | None]] = [("paddle", None)]
    for name, fname in ONNX_STAGES.items():
        if (out_dir / fname).exists():
            found.append((name, out_dir / fname))
    for e in sorted(glob.glob(str(out_dir / "*.engine"))):
        found.append((f"engine:{Path(e).stem.removeprefix('model.')}", Path(e)))
    return found


def find_artifact(backend: str, dirs: list[Path]) -> Path:
    """The artifact of `backend` in the first of `dirs` holding it, or a UserError naming them."""
    for d in dirs:
        if backend == "engine":
            engines = sorted(glob.glob(str(d / "*.engine")))
            if engines:
                return Path(engines[-1])
        elif (d / ONNX_STAGES[backend]).exists():
            return d / ONNX_STAGES[backend]
    what = "*.engine" if backend == "engine" else ONNX_STAGES[backend]
    raise UserError(
        f"no {what} in {', '.join(str(d) for d in dirs)}: build it first "
        f"(python -m pipeline build …) or pass --out DIR"
    )


class PaddleStage:
    name = "paddle"

    def __init__(self, preset, weights, seed=0, taps=False):
        from pipeline.stages.export import build_paddle_model

        self.model, _ = build_paddle_model(preset, weights, seed)
        self.path = None
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


class OrtStage:
    def __init__(self, name: str, path: Path, taps: bool = False, threads: int | None = 2):
        from pipeline.onnx_io import cpu_session, load_onnx
        from pipeline.stages.quantize import runnable

        self.name, self.path = name, Path(path)
        model = runnable(load_onnx(path))
        self.tap_names: list[str] = []
        if taps:
            self.tap_names = [
                n.input[0] for n in model.graph.node if n.op_type == "LayerNormalization"
            ]
        try:
            self.sess = cpu_session(model, extra_outputs=self.tap_names, threads=threads)
        except Exception as e:  # ORT's errors are long; one line says which artifact
            raise UserError(f"ONNX Runtime cannot load {path}: {str(e).splitlines()[0]}") from None
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.output_name = self.sess.get_outputs()[0].name

    def run(self, x: np.ndarray, taps: bool = False):
        names = [self.output_name] + (self.tap_names if taps else [])
        outs = self.sess.run(names, {self.input_name: x.astype(self.input_dtype)})
        logits = outs[0].astype(np.float32)
        return (logits, [o.astype(np.float32) for o in outs[1:]]) if taps else logits


class EngineStage:
    def __init__(self, name: str, path: Path, plugins=None):
        try:
            from pipeline.runtime import open_backend

            self.backend = open_backend(engine=str(path), plugins=plugins)
        except ImportError as e:
            raise UserError(
                f"cannot run {path}: TensorRT runtime unavailable here ({e.name} "
                "missing); evaluate the engine on a machine with TensorRT"
            ) from None
        self.name, self.path = name, Path(path)

    def run(self, x: np.ndarray, taps: bool = False):
        if taps:
            raise UserError(
                "--bisect needs per-block outputs, which an engine does not expose; "
                "bisect the ONNX stage it was built from"
            )
        return np.asarray(self.backend.run(np.ascontiguousarray(x, np.float32)), np.float32)


def open_stage(
    name: str,
    path: Path | None,
    *,
    preset=None,
    weights=None,
    seed: int = 0,
    taps: bool = False,
    plugins=None,
):
    if name == "paddle":
        return PaddleStage(preset, weights, seed, taps=taps)
    if name.startswith("engine"):
        return EngineStage(name, path, plugins=plugins)
    return OrtStage(name, path, taps=taps)
