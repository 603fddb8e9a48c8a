"""Build a TensorRT engine from an ONNX model (10.3+ and 11.x, same code).

Polygraphy loaders are used where they fit: `CreateNetwork(strongly_typed=True)` reads the flag's
value from the installed `tensorrt` (never hard-coded: 1 in 10.3, 0 in 11.x), `CreateConfig` sets
the profile, timing cache, memory pool and optimization level (and leaves TF32 off), and
`EngineBytesFromNetwork` builds and merges/saves the timing cache under a file lock.
Parsing is done here with `trt.OnnxParser.parse_from_file` rather than `NetworkFromOnnxPath`,
because Polygraphy logs the parser errors and then raises a generic "Could not parse ONNX
correctly"; we want each failing node (index, name, op, message, local-function stack) in the one
`UserError` the CLI prints. No precision flag is set: precision comes from the ONNX.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.artifacts import atomic_path, onnx_hash, sha256_file
from pipeline.errors import UserError
from pipeline.trt import env
from pipeline.trt.plugins import load_plugin_library
from pipeline.trt.settings import DEFAULTS, EngineSettings
from pipeline.trt.trtexec import parse_size

log = logging.getLogger(__name__)


def parse_errors(parser) -> str:
    """One line per parser error: node index, name, operator, description."""
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = f"node {e.node()} {e.node_name() or '<unnamed>'} ({e.node_operator() or '?'})"
        stack = ""
        try:
            if e.local_function_stack_size():
                stack = " in local function " + " > ".join(e.local_function_stack())
        except AttributeError:
            pass
        lines.append(f"  {where}{stack}: {e.desc()} [{e.code()}]")
    return "\n".join(lines)


def network_from_onnx(builder_network, onnx_path: Path):
    """Parse `onnx_path` into the (builder, network) pair; UserError listing every failing node."""
    import tensorrt as trt

    builder, network = builder_network
    parser = trt.OnnxParser(network, env.trt_logger())
    # parse_from_file resolves external weights relative to the model's folder.
    ok = parser.parse_from_file(str(onnx_path))
    if not ok or parser.num_errors:
        raise UserError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path}:\n"
            f"{parse_errors(parser)}\nrun `python -m pipeline check {onnx_path} "
            f"--trt {trt.__version__}` for a static diagnosis"
        )
    return builder, network, parser


def batch_profile(network, batch: tuple[int, int, int]):
    """A Polygraphy Profile with min/opt/max on axis 0 of every input; other axes must be static."""
    from polygraphy.backend.trt import Profile

    bmin, bopt, bmax = batch
    profile = Profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        rest = tuple(t.shape)[1:]
        if any(d < 0 for d in rest):
            raise UserError(
                f"input {t.name} has dynamic non-batch dims {tuple(t.shape)}; only "
                "the batch axis may be dynamic"
            )
        profile.add(t.name, (bmin, *rest), (bopt, *rest), (bmax, *rest))
    return profile


def build_engine(
    onnx_path, engine_path, *, plugins=None, settings: EngineSettings = DEFAULTS
) -> dict:
    """Build and save `engine_path`; return the manifest record (versions, GPU, hashes, settings)."""
    if not env.has_builder():
        raise UserError(
            "TensorRT (with its builder) is not installed: install tensorrt>=10.3 on "
            "the target or run the script that `build` wrote there"
        )
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, CreateNetwork, EngineBytesFromNetwork
    from polygraphy.exception import PolygraphyException

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    timing_cache = settings.timing_cache
    lib = load_plugin_library(plugins) if plugins else None
    # TensorRT's own plugins (the parser uses some, e.g. for InstanceNormalization); ours
    # registered themselves with REGISTER_TENSORRT_PLUGIN when the library was loaded.
    trt.init_libnvinfer_plugins(env.trt_logger(), "")
    t0 = time.perf_counter()
    builder, network, parser = network_from_onnx(CreateNetwork(strongly_typed=True)(), onnx_path)
    profile = batch_profile(network, settings.batch)
    config = CreateConfig(
        profiles=[profile],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: parse_size(settings.workspace)},
        builder_optimization_level=settings.opt_level,
        load_timing_cache=str(timing_cache) if timing_cache else None,
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,  # layer → ONNX node for `profile`
    )
    with atomic_path(engine_path, suffix=".engine") as tmp:
        # The parser travels with the network: it owns the weights until the build is done.
        try:
            data = EngineBytesFromNetwork(
                (builder, network, parser),
                config=config,
                save_timing_cache=str(timing_cache) if timing_cache else None,
            )()
        except PolygraphyException as e:
            raise UserError(
                f"TensorRT failed to build {onnx_path}: {e}; see the log above"
            ) from None
        tmp.write_bytes(bytes(data))
    inp = network.get_input(0)
    gpu = env.gpu_info() or {}
    return {
        "status": "built",
        "engine": engine_path.name,
        "onnx": str(onnx_path),
        "inputs": {"onnx": onnx_hash(onnx_path), **({"plugins": sha256_file(lib)} if lib else {})},
        "tensorrt": trt.__version__,
        "gpu": gpu.get("name"),
        "compute_capability": gpu.get("compute_capability"),
        "plugin_library": {"path": str(lib), "sha256": sha256_file(lib)} if lib else None,
        "input": {"name": inp.name, "shape": list(inp.shape)},
        "settings": {**settings.as_record(), "strongly_typed": True},
        "engine_sha256": sha256_file(engine_path),
        "seconds": round(time.perf_counter() - t0, 1),
    }
