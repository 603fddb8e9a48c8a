"""Test-wide settings and the artifacts several test folders share, each made once per session.

Full-size presets are opt-in (CAIT_FULL=1); GPU tests skip with a reason.
- `exported(name, depth)`: a verified export at reduced depth with strong LayerScale γ (so that
  parity checks can fail), cached per session.
- `xxs1`: cait_xxs_24 at depth 1 (random weights, real 224-px graph) and a folder of synthetic
  ImageNet JPEGs: structure tests and the stage chain.
- `fast_path`: the strong-γ depth-1 export fused plugin-free (`--attention onnx`).
- `digits`: the trained `cait_digits` fixture exported to ONNX + its data written as PNG folders
  (train split for calibration, held-out split for accuracy). Skips if the weights are missing.
- `classifier_path`: a toy ONNX classifier (tests/support/graphs.py).
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest

from pipeline.cpu import apply_cpu_defaults
from pipeline.presets import get_preset
from tests.support.graphs import tiny_classifier

apply_cpu_defaults()  # same Paddle threading as the CLI, before any test imports Paddle
os.environ.setdefault("GLOG_minloglevel", "2")

ROOT = Path(__file__).resolve().parents[1]
# CAIT_DIGITS_WEIGHTS: try a freshly trained checkpoint before it replaces the committed fixture
DIGITS_WEIGHTS = Path(
    os.environ.get("CAIT_DIGITS_WEIGHTS", ROOT / "tests" / "fixtures" / "cait_digits.pdparams")
)


def pytest_collection_modifyitems(config, items):
    full = os.environ.get("CAIT_FULL") == "1" or "full" in (config.getoption("-m") or "")
    skip_full = pytest.mark.skip(reason="full-size preset: opt in with CAIT_FULL=1 or -m full")
    for item in items:
        if "full" in item.keywords and not full:
            item.add_marker(skip_full)


def run_cli(*argv, cwd=None, env=None):
    """Run `python -m pipeline …` in a subprocess (exit codes and stderr are part of the contract)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, argv)],
        cwd=cwd or ROOT,
        env=e,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, depth) → path of model.onnx (reduced depth, strong γ), cached per session."""
    from pipeline.stages.export import export
    from tests.support.weights import strong_weights

    cache = {}

    def make(name: str, depth: int = 1) -> Path:
        if (name, depth) not in cache:
            preset = get_preset(name, depth=depth)
            out = tmp_path_factory.mktemp(f"{name}_d{depth}")
            weights = strong_weights(preset, out / "strong.pdparams")
            cache[name, depth] = export(preset, out, weights=str(weights)).path
        return cache[name, depth]

    return make


@pytest.fixture(scope="session")
def fast_path(exported, tmp_path_factory):
    """cait_xxs_24 at depth 1 (strong γ) fused plugin-free (`--attention onnx`): the graph
    OpenVINO, FP8's attention Q/DQ and the explain maps read. Its folder holds model.onnx too."""
    import shutil

    from pipeline.stages.fuse import fuse

    src = exported("cait_xxs_24", 1)
    out = tmp_path_factory.mktemp("fast_path")
    shutil.copy(src, out / "model.onnx")
    fuse(out / "model.onnx", out / "model.fused.onnx", attention="onnx", expect_blocks=1)
    return SimpleNamespace(
        preset=get_preset("cait_xxs_24", depth=1),
        weights=str(src.parent / "strong.pdparams"),
        out=out,
        onnx=out / "model.onnx",
        fused=out / "model.fused.onnx",
    )


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuse")


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    if not DIGITS_WEIGHTS.exists():
        pytest.skip(f"trained fixture {DIGITS_WEIGHTS} missing (scripts/train_digits.py)")
    from pipeline.stages.export import export
    from tests.support.digits import write_digits_split

    root = tmp_path_factory.mktemp("digits")
    preset = get_preset("cait_digits")
    out = root / "art"
    export(preset, out, weights=str(DIGITS_WEIGHTS))
    heldout = root / "heldout"
    train = root / "train"
    write_digits_split(heldout, "heldout")
    write_digits_split(train, "train")
    return SimpleNamespace(
        preset=preset,
        weights=str(DIGITS_WEIGHTS),
        out=out,
        onnx=out / "model.onnx",
        heldout=heldout,
        train=train,
    )


@pytest.fixture(scope="session")
def xxs1(tmp_path_factory):
    from pipeline.stages.export import export
    from tests.support.synthetic import write_synthetic_imagenet

    root = tmp_path_factory.mktemp("xxs1")
    preset = get_preset("cait_xxs_24", depth=1)
    out = root / "art"
    export(preset, out)
    jpegs = root / "jpegs"
    write_synthetic_imagenet(jpegs, 40, size=72, num_classes=10)
    return SimpleNamespace(preset=preset, out=out, onnx=out / "model.onnx", jpegs=jpegs)


@pytest.fixture
def classifier_path(tmp_path):
    p = tmp_path / "model.onnx"
    onnx.save(tiny_classifier(), str(p))
    return p
