"""A model served by Triton Inference Server as a runner: the parity ladder and `eval` of what
production answers (docs/serving.md).

    runner = TritonRunner("127.0.0.1:8000", "cait_xxs_24_trt", protocol="http" | "grpc")
    logits = runner.run(images)       # float32 (B, 3, S, S) → float32 (B, classes)

It talks to the classifier model (the image tensor in, logits out), so that the served model gets
exactly the tensors every other rung gets. A batch is cut into requests of at most the model's
`max_batch_size` and sent concurrently (`concurrency` connections), which is how Triton's dynamic
batcher sees production traffic. Names, dtype and size are read from the server's model metadata.
`tritonclient` clients are not shared between threads: each worker has its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.errors import UserError

PROTOCOLS = ("http", "grpc")
_NUMPY = {"FP32": np.float32, "FP16": np.float16}


def parse_url(url: str) -> str:
    """HOST:PORT (tritonclient takes no scheme) or UserError."""
    text = str(url).strip()
    for scheme in ("http://", "https://", "grpc://"):
        text = text.removeprefix(scheme)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--url {url!r}: write HOST:PORT, e.g. 127.0.0.1:8000 (gRPC: 8001)")
    return f"{host}:{port}"


def _module(protocol: str):
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    try:
        if protocol == "http":
            import tritonclient.http as mod
        else:
            import tritonclient.grpc as mod
    except ImportError:
        raise UserError(
            "the Triton backend needs tritonclient: pip install 'cait-trt-pipeline[triton]'"
        ) from None
    return mod


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class TritonRunner:
    name = "triton"
    path = None

    def __init__(
        self,
        url: str,
        model: str,
        *,
        protocol: str = "http",
        concurrency: int = 4,
        timeout: float = 60.0,
    ):
        if concurrency < 1:
            raise UserError(f"--concurrency must be >= 1, got {concurrency}")
        self.url, self.model, self.protocol = parse_url(url), model, protocol
        self._mod = _module(protocol)
        self.timeout = float(timeout)
        self._local = threading.local()
        client = self._client()
        try:
            client.is_server_live(**self._kw())
            ready = client.is_model_ready(model, **self._kw())
        except Exception as e:  # connection refused, DNS, timeout: tritonclient's own types
            raise UserError(
                f"cannot reach Triton at {self.url} over {protocol}: {_reason(e)}; start the "
                "server (launch_triton.sh) or fix --url"
            ) from None
        if not ready:
            raise UserError(
                f"Triton at {self.url} has no ready model {model!r} (ready: "
                f"{self._ready_models(client)}); pass --triton-model NAME"
            )
        self._describe(client)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="triton")
        self.concurrency = concurrency

    def _kw(self) -> dict:
        return {"client_timeout": self.timeout} if self.protocol == "grpc" else {}

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            if self.protocol == "http":
                c = self._mod.InferenceServerClient(
                    self.url, connection_timeout=self.timeout, network_timeout=self.timeout
                )
            else:
                c = self._mod.InferenceServerClient(self.url)
            self._local.client = c
        return c

    def _json(self, fn, *args):
        return fn(*args, as_json=True) if self.protocol == "grpc" else fn(*args)

    def _ready_models(self, client) -> str:
        """The ready models, for the error message (a server may restrict the index API)."""
        try:
            index = self._json(client.get_model_repository_index)
        except Exception:
            return "the server does not list them"
        index = index.get("models", []) if isinstance(index, dict) else index
        names = sorted(m["name"] for m in index if m.get("state", "READY") == "READY")
        return ", ".join(names) or "none"

    def _describe(self, client) -> None:
        meta = self._json(client.get_model_metadata, self.model)
        config = self._json(client.get_model_config, self.model)
        config = config.get("config", config)
        inputs, outputs = meta.get("inputs", []), meta.get("outputs", [])
        shape = [int(d) for d in inputs[0]["shape"]] if len(inputs) == 1 else []
        if len(shape) != 4 or inputs[0]["datatype"] not in _NUMPY or len(outputs) < 1:
            seen = ", ".join(f"{i['name']} {i['datatype']} {i['shape']}" for i in inputs)
            raise UserError(
                f"Triton model {self.model!r} takes {seen or 'no input'}, not one image tensor "
                "(B, 3, S, S): pass the classifier (--triton-model <name>_trt), not the ensemble"
            )
        self.input_name, self.output_name = inputs[0]["name"], outputs[0]["name"]
        self.input_datatype = inputs[0]["datatype"]
        self.input_size = shape[-1]
        self.max_batch = int(config.get("max_batch_size", 0)) or 1

    def _infer(self, x: np.ndarray) -> np.ndarray:
        mod, client = self._mod, self._client()
        inp = mod.InferInput(self.input_name, list(x.shape), self.input_datatype)
        inp.set_data_from_numpy(np.ascontiguousarray(x, _NUMPY[self.input_datatype]))
        out = mod.InferRequestedOutput(self.output_name)
        try:
            result = client.infer(self.model, [inp], outputs=[out], **self._kw())
        except Exception as e:
            raise UserError(
                f"Triton at {self.url} failed on {self.model!r}: {_reason(e)}"
            ) from None
        return np.asarray(result.as_numpy(self.output_name), np.float32)

    def run(self, x: np.ndarray, taps: bool = False):
        if taps:
            raise UserError("a served model has no per-block taps: bisect an ONNX stage instead")
        step = max(1, min(self.max_batch, -(-len(x) // self.concurrency)))
        chunks = [x[i : i + step] for i in range(0, len(x), step)]
        return np.concatenate(list(self._pool.map(self._infer, chunks)))
