"""A TensorRT engine as a runner: cuda-python buffers (`cuda.bindings.runtime`, as NVIDIA's
samples since 10.13), `execute_async_v3` on a private stream, optionally replayed as a CUDA graph.

The I/O tensor API (`num_io_tensors`, `get_tensor_name/mode/dtype`, `set_input_shape`,
`set_tensor_address`, `execute_async_v3`) is the same in 10.3 and 11.x (python/src/infer/pyCore.cpp
at both tags), so there is no version branch here.

CUDA graphs: TensorRT documents capturing `enqueueV3` for the shapes set at capture time; it does
not document replaying a graph after `set_input_shape` changed the context. So a runner keeps one
graph for one (context, input shape, buffer addresses) and re-captures when any of them changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.artifacts import sha256_file
from pipeline.errors import UserError
from pipeline.trt import env
from pipeline.trt.guard import check_engine_record, find_engine_record
from pipeline.trt.plugins import load_plugin_library


def _check(result):
    """cuda-python returns (err, *values); raise on error, return the value(s) (as NVIDIA's
    samples/python/common_runtime.py `cuda_call`)."""
    from cuda.bindings import runtime as cudart

    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {err} ({cudart.cudaGetErrorName(err)[1]})")
    return values[0] if len(values) == 1 else (values or None)


class GraphSlot:
    """One captured CUDA graph, valid for one key (input shape and buffer addresses).

    `get(key)` replays the graph captured for `key`, or destroys the one it holds and captures
    anew: never a graph captured under another shape."""

    def __init__(self, capture, destroy):
        self._capture, self._destroy = capture, destroy
        self.key = None
        self.graph = None
        self.captures = 0

    def get(self, key):
        if self.graph is None or self.key != key:
            self.reset()
            self.graph = self._capture()
            self.key = key
            self.captures += 1
        return self.graph

    def reset(self) -> None:
        if self.graph is not None:
            self._destroy(self.graph)
        self.graph = self.key = None


class TrtRunner:
    def __init__(
        self,
        engine_path,
        *,
        name: str = "tensorrt",
        plugins=None,
        cuda_graph=False,
        skip_manifest_check=False,
    ):
        trt = env.tensorrt_module()
        if trt is None:
            raise UserError(
                "the TensorRT runner needs the `tensorrt` Python package (and a GPU);"
                " use --onnx for ONNX Runtime instead"
            )
        cudart = env.cuda_runtime()  # cuda-python, checked against the driver
        self.name = name
        self._cudart = cudart
        path = Path(engine_path)
        if not path.is_file():
            raise UserError(f"engine {path} not found")

        record = find_engine_record(path)
        if plugins is None and record and record.get("plugin_library"):
            plugins = record["plugin_library"]["path"]
        lib = load_plugin_library(plugins) if plugins else None
        if not skip_manifest_check:
            gpu = env.gpu_info() or {}
            check_engine_record(
                path,
                record,
                trt_version=trt.__version__,
                gpu_name=gpu.get("name"),
                compute_capability=gpu.get("compute_capability"),
                plugin_sha256=sha256_file(lib) if lib else None,
            )

        logger = env.trt_logger()
        trt.init_libnvinfer_plugins(logger, "")
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise UserError(
                f"TensorRT {trt.__version__} cannot deserialize {path}; rebuild it here"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"{path}: expected one input and one output, got {inputs} / {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.input_size = int(self.engine.get_tensor_shape(self.input_name)[-1])
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.stream = _check(cudart.cudaStreamCreate())
        self.cuda_graph = cuda_graph
        self.graphs = GraphSlot(self._capture, self._destroy)
        self._buffers: dict[str, tuple[int, int]] = {}  # name → (device ptr, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr))
            ptr = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _capture(self):
        """Capture one enqueue for the context's current shape and addresses.

        One plain run first lets TensorRT finish its deferred work for this shape (NVIDIA
        developer guide, "CUDA Graphs"); the plugins' enqueue is capturable."""
        cudart = self._cudart
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("execute_async_v3 failed")
        _check(cudart.cudaStreamSynchronize(self.stream))
        _check(
            cudart.cudaStreamBeginCapture(
                self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
            )
        )
        self.context.execute_async_v3(self.stream)
        graph = _check(cudart.cudaStreamEndCapture(self.stream))
        try:
            return _check(cudart.cudaGraphInstantiate(graph, 0))
        finally:
            _check(cudart.cudaGraphDestroy(graph))

    def _destroy(self, graph_exec) -> None:
        _check(self._cudart.cudaGraphExecDestroy(graph_exec))

    def _enqueue(self, key) -> None:
        if not self.cuda_graph:
            if not self.context.execute_async_v3(self.stream):
                raise RuntimeError("execute_async_v3 failed")
            return
        _check(self._cudart.cudaGraphLaunch(self.graphs.get(key), self.stream))

    def run(self, batch: np.ndarray, taps: bool = False) -> np.ndarray:
        if taps:
            raise UserError(
                "--bisect needs per-block outputs, which an engine does not expose; "
                "bisect the ONNX stage it was built from"
            )
        cudart = self._cudart
        n = batch.shape[0]
        if n > self.max_batch:
            return np.concatenate(
                [self.run(batch[i : i + self.max_batch]) for i in range(0, n, self.max_batch)]
            )
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        self.context.set_input_shape(self.input_name, x.shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        y = np.empty(out_shape, dtype=self.output_dtype)
        d_in = self._buffer(self.input_name, x.nbytes)
        d_out = self._buffer(self.output_name, y.nbytes)
        self.context.set_tensor_address(self.input_name, d_in)
        self.context.set_tensor_address(self.output_name, d_out)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self.stream))
        self._enqueue((x.shape, d_in, d_out))
        _check(cudart.cudaMemcpyAsync(y.ctypes.data, d_out, y.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return y.astype(np.float32, copy=False)

    def benchmark(self, batch: int, *, warmup: int = 50, iterations: int = 200) -> list[float]:
        """Milliseconds per batch of `iterations` CUDA-graph replays at `batch`, after `warmup`
        replays, with the input already on the device, timed with CUDA events: what trtexec
        measures with --useCudaGraph --noDataTransfers (11.x's default), so that candidates
        timed here and on the target compare like for like."""
        cudart = self._cudart
        shape = (batch, *self.engine.get_tensor_shape(self.input_name)[1:])
        self.context.set_input_shape(self.input_name, shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        d_in = self._buffer(self.input_name, int(np.prod(shape)) * self.input_dtype.itemsize)
        d_out = self._buffer(self.output_name, int(np.prod(out_shape)) * self.output_dtype.itemsize)
        self.context.set_tensor_address(self.input_name, d_in)
        self.context.set_tensor_address(self.output_name, d_out)
        _check(
            cudart.cudaMemsetAsync(
                d_in, 0, int(np.prod(shape)) * self.input_dtype.itemsize, self.stream
            )
        )
        graph = self.graphs.get((shape, d_in, d_out))
        for _ in range(warmup):
            _check(cudart.cudaGraphLaunch(graph, self.stream))
        start, end = _check(cudart.cudaEventCreate()), _check(cudart.cudaEventCreate())
        try:
            times = []
            for _ in range(iterations):
                _check(cudart.cudaEventRecord(start, self.stream))
                _check(cudart.cudaGraphLaunch(graph, self.stream))
                _check(cudart.cudaEventRecord(end, self.stream))
                _check(cudart.cudaEventSynchronize(end))
                times.append(float(_check(cudart.cudaEventElapsedTime(start, end))))
            return times
        finally:
            cudart.cudaEventDestroy(start)
            cudart.cudaEventDestroy(end)

    def __del__(self):
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        graphs = getattr(self, "graphs", None)
        if graphs is not None and graphs.graph is not None:
            cudart.cudaGraphExecDestroy(graphs.graph)
        for ptr, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(ptr)
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)
