"""trtexec command lines for 10.x vs 11.x (facts in pipeline/trt/versions.py)."""

import pytest

from pipeline.errors import UserError
from pipeline.trt import versions
from pipeline.trt.trtexec import build_command, parse_size, profile_command

PRECISION = {"--fp16", "--int8", "--best", "--bf16", "--fp8"}
BENCH = ["--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--separateProfileRun"]


def _build(target, **kw):
    return build_command(
        "model.fp16.onnx",
        "model.fp16.engine",
        target=target,
        input_name="x",
        input_shape=(3, 224, 224),
        **kw,
    )


def _profile(target):
    return profile_command(
        "model.engine",
        target=target,
        input_name="x",
        input_shape=(3, 224, 224),
        batch=32,
        export_dir="out",
        plugins="libcait_trt_plugins.so",
    )


def test_strongly_typed_flag_only_on_10x():
    assert "--stronglyTyped" in _build("10.3")
    assert "--stronglyTyped" in _build("10.16")
    assert "--stronglyTyped" not in _build("11.x")


@pytest.mark.parametrize("target", versions.TARGETS)
def test_no_precision_flags_ever(target):
    args = _build(target, plugins="lib.so", timing_cache="t.cache") + _profile(target)
    assert not PRECISION & {a.split("=")[0] for a in args}


def test_build_line_profile_workspace_and_plugins():
    args = _build(
        "10.3",
        batch=(1, 8, 32),
        workspace="2G",
        opt_level=5,
        plugins="lib.so",
        timing_cache="t.cache",
    )
    assert "--minShapes=x:1x3x224x224" in args
    assert "--optShapes=x:8x3x224x224" in args
    assert "--maxShapes=x:32x3x224x224" in args
    assert "--memPoolSize=workspace:2048M" in args
    assert "--builderOptimizationLevel=5" in args
    assert "--timingCacheFile=t.cache" in args
    assert "--staticPlugins=lib.so" in args
    assert "--noTF32" in args  # same as Polygraphy's CreateConfig default


def test_benchmark_flags_like_for_like():
    ten = _profile("10.3")
    for flag in BENCH:
        assert flag in ten
    eleven = _profile("11.x")
    assert not set(BENCH) & set(eleven)  # defaults in trtexec 11, deprecated no-ops there
    for args in (ten, eleven):
        assert "--shapes=x:32x3x224x224" in args
        assert any(a.startswith("--exportProfile=") for a in args)
        assert any(a.startswith("--exportLayerInfo=") for a in args)
        assert any(a.startswith("--exportTimes=") for a in args)


@pytest.mark.parametrize(
    "given, target",
    [
        ("10.3", "10.3"),
        ("10.3.0.30", "10.3"),
        ("10.8", "10.3"),
        ("10.16.1", "10.16"),
        ("11.x", "11.x"),
        ("11.1.0.106", "11.x"),
        ("11", "11.x"),
    ],
)
def test_normalize_target(given, target):
    assert versions.normalize_target(given) == target


@pytest.mark.parametrize("bad", ["8.5", "9.3", "banana"])
def test_normalize_target_rejects(bad):
    with pytest.raises(UserError):
        versions.normalize_target(bad)


def test_parse_size():
    assert parse_size("2G") == 2 << 30
    assert parse_size("512M") == 512 << 20
    assert parse_size("1024") == 1024 << 20
    with pytest.raises(UserError):
        parse_size("two gigs")
