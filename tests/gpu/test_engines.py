"""cait_xxs_24 on a real GPU: fp16 and int8 engines, with plugins and with the plugin-free
fallback; the parity ladder against ONNX Runtime (engine rung included); plugin vs fallback
outputs; and a trtexec profile of both (ratio printed).

Artifacts come from the CLI as a user would make them:
    python -m pipeline build --model cait_xxs_24 --fp16|--int8 --calib-data DIR \
        --attention plugin|onnx --plugins LIB --trt <installed> --require-engine --out DIR
(`--attention onnx` is the plugin-free fallback; `--require-engine` makes a missing TensorRT an
error instead of a script). Images: $CAIT_GPU_IMAGES if set (e.g. ImageNet val), else seeded
synthetic JPEGs — then agreement is measured, not accuracy, and the weights are random unless
$CAIT_WEIGHTS names a checkpoint.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.gpu.conftest import ROOT, plugin_library

MODEL = "cait_xxs_24"
PRECISIONS = ("fp16", "int8")
ATTENTION = ("plugin", "onnx")
N_IMAGES = int(os.environ.get("CAIT_GPU_N_IMAGES", "32"))


def cli(*argv, timeout=3600):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, argv)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(r.stdout[-4000:], r.stderr[-4000:], sep="\n")
    return r


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu")


@pytest.fixture(scope="session")
def images(work):
    given = os.environ.get("CAIT_GPU_IMAGES")
    if given:
        return Path(given)
    from PIL import Image

    folder = work / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(max(N_IMAGES, 64)):  # smooth random fields: JPEG-friendly, not pure noise
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(folder / f"{i:04d}.jpg")
    return folder


@pytest.fixture(scope="session")
def installed_target():
    from pipeline.trt import env, versions

    return versions.normalize_target(env.trt_version())


@pytest.fixture(scope="session")
def artifacts(work, images, installed_target):
    """{(precision, attention): artifact dir with model.<precision>.engine}."""
    out = {}
    for precision in PRECISIONS:
        for attention in ATTENTION:
            d = work / f"{precision}_{attention}"
            args = [
                "build",
                "--model",
                MODEL,
                f"--{precision}",
                "--attention",
                attention,
                "--trt",
                installed_target,
                "--require-engine",
                "--out",
                d,
                "--images",
                N_IMAGES,
                "--data",
                images,
            ]
            if attention == "plugin":
                args += ["--plugins", plugin_library()]
            if precision == "int8":
                # max calibration: minutes, not the hour entropy takes
                args += ["--calib-data", images, "--calib-images", 64, "--calib-method", "max"]
            if os.environ.get("CAIT_WEIGHTS"):
                args += ["--weights", os.environ["CAIT_WEIGHTS"]]
            r = cli(*args)
            assert r.returncode == 0, f"build {precision}/{attention} failed:\n{r.stderr[-3000:]}"
            engine = d / f"model.{precision}.engine"
            assert engine.is_file(), f"{engine} missing after build --require-engine"
            out[precision, attention] = d
    return out


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("attention", ATTENTION)
def test_engine_record(artifacts, precision, attention):
    from pipeline.trt import env
    from pipeline.trt.guard import find_engine_record

    rec = find_engine_record(artifacts[precision, attention] / f"model.{precision}.engine")
    assert rec and rec["status"] == "built"
    assert rec["tensorrt"] == env.trt_version()
    assert rec["compute_capability"] == env.gpu_info()["compute_capability"]
    assert (rec["plugin_library"] is not None) == (attention == "plugin")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("attention", ATTENTION)
def test_parity_ladder_with_engine(artifacts, images, precision, attention):
    """The ladder (ONNX Runtime stages and the engine rung) within the parity thresholds."""
    d = artifacts[precision, attention]
    r = cli("parity", "--model", MODEL, "--out", d, "--data", images, "--images", N_IMAGES)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"engine:{precision}" in r.stdout


def _logits(engine, x, cuda_graph=False):
    from pipeline.runners import open_backend

    return open_backend(engine=engine, cuda_graph=cuda_graph).run(x)


def _batch(images, size=224, n=16):
    from pipeline.data.preprocess import load_image, preprocess

    files = sorted(
        p for p in Path(images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )[:n]
    return np.stack([preprocess(load_image(p), size) for p in files])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_plugin_engine_matches_fallback_engine(artifacts, images, precision):
    x = _batch(images)
    plugin = _logits(artifacts[precision, "plugin"] / f"model.{precision}.engine", x)
    fallback = _logits(artifacts[precision, "onnx"] / f"model.{precision}.engine", x)
    cos = np.sum(plugin * fallback, 1) / (
        np.linalg.norm(plugin, axis=1) * np.linalg.norm(fallback, axis=1)
    )
    agree = np.mean(plugin.argmax(1) == fallback.argmax(1))
    print(f"{precision}: plugin vs fallback cosine min {cos.min():.5f}, top-1 agree {agree:.2%}")
    # fp16: both accumulate in fp32 where it matters; int8: separately calibrated scales.
    assert cos.min() > (0.999 if precision == "fp16" else 0.98)
    assert agree >= (0.95 if precision == "fp16" else 0.85)


def test_cuda_graph_replay_is_bitwise_identical(artifacts, images):
    engine = artifacts["fp16", "plugin"] / "model.fp16.engine"
    x = _batch(images, n=8)
    assert np.array_equal(_logits(engine, x), _logits(engine, x, cuda_graph=True))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_profile_plugin_vs_fallback(artifacts, trtexec, precision):
    import json

    ips = {}
    for attention in ATTENTION:
        engine = artifacts[precision, attention] / f"model.{precision}.engine"
        r = cli("profile", engine, "--batch", 32, "--trtexec", trtexec, "--duration", 5)
        assert r.returncode == 0, r.stderr[-3000:]
        summary = json.loads(
            (engine.with_name(engine.name + ".profile") / "summary.json").read_text()
        )
        ips[attention] = summary["images_per_s"]
        groups = summary["layers"]["groups"]
        assert groups, "no layer groups: was the engine built with detailed verbosity?"
        if attention == "plugin":
            assert summary["layers"]["plugins"].get("CaitTalkingHeadsAttention", 0) > 0
    print(
        f"{precision} batch 32: plugin {ips['plugin']:.0f} img/s, fallback "
        f"{ips['onnx']:.0f} img/s, ratio {ips['plugin'] / ips['onnx']:.2f}x"
    )
    assert ips["plugin"] > 0 and ips["onnx"] > 0


def test_cuda_graph_is_recaptured_when_the_batch_changes(artifacts, images):
    """One graph per input shape: alternating batches never replays a graph captured under
    another shape, and every result equals the plain enqueue's."""
    from pipeline.runners import open_backend

    engine = artifacts["fp16", "plugin"] / "model.fp16.engine"
    x = _batch(images, n=8)
    plain = open_backend(engine=engine)
    graphed = open_backend(engine=engine, cuda_graph=True)
    for n in (8, 3, 8):
        assert np.array_equal(graphed.run(x[:n]), plain.run(x[:n]))
    assert graphed.graphs.captures == 3


def test_auto_attention_builds_times_and_keeps_the_fastest(work, images, installed_target):
    """The default `--attention auto` on a TensorRT host: four candidate engines built and timed
    at the opt batch, the rule's winner installed as model.fp16.engine, every timing recorded."""
    import json

    from pipeline.trt.choice import NOISE

    d = work / "fp16_auto"
    r = cli(
        "build",
        "--model",
        MODEL,
        "--fp16",
        "--trt",
        installed_target,
        "--require-engine",
        "--plugins",
        plugin_library(),
        "--out",
        d,
        "--images",
        4,
        "--data",
        images,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    stages = json.loads((d / "manifest.json").read_text())["stages"]
    rec = stages["attention/model.fp16.engine"]
    assert rec["status"] == "chosen" and rec["measured_with"].startswith("pipeline runner")
    times = {row["candidate"]: row["median_ms"] for row in rec["choice"]["candidates"]}
    assert set(times) == {"plugin", "th", "ca", "plugin-free"}
    winner = rec["choice"]["winner"]
    if winner != "plugin-free":
        assert times[winner] < times["plugin-free"] * (1 - NOISE)
    assert stages["engine/model.fp16.engine"]["attention"] == winner
    assert f"kept {winner}" in r.stdout
    assert _logits(d / "model.fp16.engine", _batch(images, n=4)).shape == (4, 1000)


@pytest.mark.parametrize("attention", ATTENTION)
def test_engine_bisect_block_by_block(artifacts, images, attention):
    """`parity --bisect engine:fp16`: the engine's model built again with every block's output
    marked (Polygraphy), compared block by block with the fp32 ONNX on the same images."""
    import json

    d = artifacts["fp16", attention]
    r = cli(
        "parity", "--model", MODEL, "--out", d, "--data", images, "--images", 8,
        "--bisect", "engine:fp16",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    b = json.loads((d / "parity.json").read_text())["bisect"]["engine:fp16"]
    assert len(b["checkpoints"]) == len(b["rel_error"]) == 1 + 2 * 24 + 2 * 2
    print(f"{attention}: engine fp16 worst block error {max(b['rel_error']):.2e} at "
          f"{b['checkpoints'][int(np.argmax(b['rel_error']))]}, first jump {b['first_jump']}")  # fmt: skip
    assert max(b["rel_error"]) < 0.05  # fp16 against fp32, per token: a miscompile is far above


def test_fp8_engine_needs_ada_or_newer(work, images, installed_target):
    """FP8 builds and joins the ladder on compute capability >= 8.9; elsewhere one clear line."""
    from pipeline.trt import env, versions

    cc = env.gpu_info()["compute_capability"]
    target = installed_target if installed_target != "10.3" else "10.16"
    d = work / "fp8_onnx"
    r = cli(
        "build", "--model", MODEL, "--fp8", "--attention", "onnx", "--trt", target,
        "--require-engine", "--out", d, "--images", N_IMAGES, "--data", images,
        "--calib-data", images, "--calib-images", 64,
    )  # fmt: skip
    if versions.compute_tuple(cc) < versions.compute_tuple(versions.FP8_MIN_COMPUTE):
        assert r.returncode == 2 and "compute capability" in r.stderr.splitlines()[-1]
        return
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli("parity", "--model", MODEL, "--out", d, "--data", images, "--images", N_IMAGES)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "engine:fp8" in r.stdout
