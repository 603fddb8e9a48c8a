"""An engine's residual stream, block by block: the checkpoints `parity --bisect` compares.

An engine exposes only its output, so the model it was built from is built again with every
checkpoint — the input of each LayerNormalization, the tensors the ONNX bisect reads — marked as
a network output (Polygraphy's `ModifyNetworkOutputs`, what `polygraphy run --trt-outputs`
does), and run once on the images. Marking a tensor keeps it materialized, so TensorRT cannot
fuse across it: the marked engine is a close relative of the deployed one, not the same plan.
A miscompile that depends on a fusion spanning a checkpoint (NVIDIA/TensorRT issues 4723 and
4742 are ViT FP16 miscompiles on 10.3/10.4) can vanish in it; the report then shows no jump,
which is itself the hint to bisect by `--attention onnx` or per-precision instead.

Same builder settings as `build.py` (strongly typed, plugins loaded once, the profile's batch
covering the images); the tensors keep their ONNX names in the TensorRT network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.onnx_io import load_onnx
from pipeline.trt import env
from pipeline.trt.build import batch_profile, network_from_onnx
from pipeline.trt.plugins import load_plugin_library
from pipeline.trt.settings import DEFAULTS, EngineSettings
from pipeline.trt.trtexec import parse_size


def checkpoint_names(model) -> list[str]:
    """The checkpoints in execution order: the input of every LayerNormalization."""
    return [n.input[0] for n in model.graph.node if n.op_type == "LayerNormalization"]


def marked_engine_taps(
    onnx_path, x: np.ndarray, *, plugins=None, settings: EngineSettings = DEFAULTS
) -> list[np.ndarray]:
    """Build `onnx_path` with its checkpoints marked as outputs, run `x`, return them (float32)."""
    if not env.has_builder() or env.gpu_info() is None:
        raise UserError(
            "bisecting an engine builds it again with its blocks marked as outputs: that needs "
            "TensorRT and a GPU; run `parity --bisect` on the target"
        )
    import tensorrt as trt
    from polygraphy.backend.trt import (
        CreateConfig,
        CreateNetwork,
        EngineFromNetwork,
        ModifyNetworkOutputs,
        TrtRunner,
    )

    onnx_path = Path(onnx_path)
    names = checkpoint_names(load_onnx(onnx_path))
    if plugins:
        load_plugin_library(plugins)
    trt.init_libnvinfer_plugins(env.trt_logger(), "")
    builder, network, parser = network_from_onnx(CreateNetwork(strongly_typed=True)(), onnx_path)
    output = network.get_output(0).name
    inp = network.get_input(0)
    n = len(x)
    config = CreateConfig(
        profiles=[batch_profile(network, (1, n, n))],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: parse_size(settings.workspace)},
        builder_optimization_level=settings.opt_level,
    )
    marked = ModifyNetworkOutputs((builder, network, parser), outputs=[output, *names])
    dtype = np.dtype(trt.nptype(inp.dtype))
    with TrtRunner(EngineFromNetwork(marked, config=config)) as runner:
        outs = runner.infer({inp.name: np.ascontiguousarray(x, dtype)})
    missing = [t for t in names if t not in outs]
    if missing:
        raise UserError(
            f"TensorRT kept no tensor named {missing[0]!r} in {onnx_path.name}; cannot "
            "compare that block"
        )
    return [np.asarray(outs[t], np.float32) for t in names]
