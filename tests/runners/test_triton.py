"""The served model against a live Triton server: PyTriton's bundled tritonserver hosting the
project's CPU runtime (scripts/triton_cpu_server.py) on 127.0.0.1, started and stopped here.

`eval --backend triton` over HTTP and gRPC must give every image the same top-5 as
`infer --onnx`; the runner's logits equal ONNX Runtime's; the parity ladder gets a `triton` rung.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from pipeline.runners.ort import OrtRunner
from pipeline.runners.triton import TritonRunner
from tests.support.serving import free_port, triton_cpu_server

pytest.importorskip("tritonclient.grpc", reason="tritonclient is in the test extra")
MAX_BATCH = 4  # smaller than eval's batches: the runner must split and reassemble


@pytest.fixture(scope="module")
def server(digits, tmp_path_factory):
    log = tmp_path_factory.mktemp("triton") / "server.log"
    args = (digits.onnx, "--name", "cait_digits", "--max-batch", MAX_BATCH)
    with triton_cpu_server(log, *args) as urls:
        yield dict(zip(("http", "grpc"), urls))


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_runner_returns_onnx_runtime_logits(server, digits, protocol):
    x = np.stack([digits_image for digits_image in _images(digits, 11)])
    served = TritonRunner(server[protocol], "cait_digits_trt", protocol=protocol, concurrency=3)
    assert served.input_size == 32 and served.max_batch == MAX_BATCH
    np.testing.assert_allclose(served.run(x), OrtRunner(digits.onnx).run(x), rtol=0, atol=1e-5)


def _images(digits, n):
    from tests.support.digits import load_digits_split

    return load_digits_split("heldout")[0][:n]


def test_eval_top5_equals_infer_onnx_over_http_and_grpc(server, digits, cli, tmp_path):
    top5 = {}
    for protocol in ("http", "grpc"):
        out = tmp_path / f"{protocol}.json"
        r = cli(
            "eval", "--model", "cait_digits", "--out", digits.out, "--data", digits.heldout,
            "--backend", "triton", "--url", server[protocol], "--protocol", protocol,
            "--limit", 20, "--batch-size", 10, "--json", out,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        assert "eval [triton]" in r.stderr  # the progress bar
        rec = json.loads(out.read_text())
        assert rec["images"] == 20 and rec["acc_top1"] >= 0.9  # the trained fixture: 98.9 %
        top5[protocol] = rec["top5"]
    assert top5["http"] == top5["grpc"]
    paths = sorted(top5["http"])
    r = cli("infer", "--onnx", digits.onnx, *paths, "--topk", 5)
    assert r.returncode == 0, r.stderr[-2000:]
    # `infer --onnx` as a user runs it: its default CPU runtime, whichever that is
    blocks = re.split(r"^(\S+) \((?:onnxruntime|openvino)\):$", r.stdout, flags=re.M)[1:]
    local = {
        p: [int(i) for i in re.findall(r"\((\d+)\)$", b, re.M)] for p, b in zip(*[iter(blocks)] * 2)
    }
    assert local == top5["http"]


def test_parity_ladder_has_a_served_rung(server, digits, cli, tmp_path):
    art = shutil.copytree(digits.out, tmp_path / "art")
    r = cli(
        "parity", "--model", "cait_digits", "--weights", digits.weights, "--out", art,
        "--data", digits.heldout, "--images", 24, "--url", server["grpc"], "--protocol", "grpc",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    stages = json.loads((art / "parity.json").read_text())["stages"]
    served, onnx_rung = stages["triton"], stages["onnx"]
    assert served["top1_agreement"] == 1.0 and served["max_abs"] <= 1e-4
    assert abs(served["max_abs"] - onnx_rung["max_abs"]) <= 1e-5  # the same model, served
    assert "cait_digits_trt @ " in (art / "parity.md").read_text()


def test_unknown_model_and_unreachable_server(server, digits, cli):
    base = ["eval", "--model", "cait_digits", "--out", digits.out, "--data", digits.heldout]
    for protocol in ("http", "grpc"):
        msg = _one_error_line(
            cli(*base, "--backend", "triton", "--url", server[protocol], "--protocol", protocol,
                "--triton-model", "resnet50")
        )  # fmt: skip
        assert "no ready model 'resnet50'" in msg
        closed = f"127.0.0.1:{free_port()}"  # nothing listens there
        msg = _one_error_line(
            cli(*base, "--backend", "triton", "--url", closed, "--protocol", protocol)
        )
        assert f"cannot reach Triton at {closed} over {protocol}" in msg
