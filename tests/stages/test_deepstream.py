"""The nvinfer config: values derived from the engine's record and the ONNX, the plugin library
as custom-lib-path, and the preprocessing drift measured and written beside it."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.data.nvinfer import net_scale_and_offsets
from pipeline.errors import UserError
from pipeline.stages.deepstream import deepstream_config
from pipeline.stages.engine import engine_stage
from pipeline.trt.settings import EngineSettings
from tests.support.graphs import tiny_classifier
from tests.support.serving import artifact_folder, built_engine_record


def _props(path) -> dict:
    return dict(
        ln.split("=", 1)
        for ln in path.read_text().splitlines()
        if "=" in ln and not ln.startswith("#")
    )


def test_config_follows_the_profile_and_the_onnx(tmp_path):
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier(size=32))
    engine_stage(onnx_path, onnx_path.parent, settings=EngineSettings(batch=(1, 2, 6)))
    dest = tmp_path / "art" / "deepstream"
    deepstream_config(onnx_path, dest, geometry="pad", scaling_filter="nearest")
    p = _props(dest / "config_infer_primary.txt")
    assert p["batch-size"] == "6" and p["infer-dims"] == "3;32;32" and p["network-mode"] == "2"
    assert (
        p["model-engine-file"] == "../model.fp16.engine" and p["onnx-file"] == "../model.fp16.onnx"
    )
    assert p["output-blob-names"] == "logits" and p["network-type"] == "1"
    assert (p["maintain-aspect-ratio"], p["symmetric-padding"], p["scaling-filter"]) == (
        "1",
        "1",
        "0",
    )
    scale, offsets = net_scale_and_offsets()
    assert float(p["net-scale-factor"]) == pytest.approx(scale, rel=1e-9)
    assert [float(o) for o in p["offsets"].split(";")] == pytest.approx(offsets, rel=1e-6)
    assert "custom-lib-path" not in p  # a plugin-free model loads no library
    labels = (dest / "labels.txt").read_text().splitlines()
    assert len(labels) == 1 and len(labels[0].split(";")) == 1000
    assert "not measured" in (dest / "config_infer_primary.txt").read_text()


def test_max_batch_zero_is_refused(tmp_path):
    onnx_path = artifact_folder(tmp_path / "art", tiny_classifier())
    built_engine_record(onnx_path, (1, 1, 0))
    with pytest.raises(UserError, match="max batch 0"):
        deepstream_config(onnx_path, tmp_path / "ds")


def test_drift_is_measured_on_the_trained_digits(digits, cli, tmp_path):
    """The command: bilinear scaling keeps ≥ 90 % top-1 agreement on held-out digits; the figures
    go into drift.json and into the config as comments."""
    r = cli(
        "package", "deepstream", "--model", "cait_digits", "--out", digits.out, "--stage", "onnx",
        "--data", digits.heldout, "--images", 30, "-o", tmp_path / "ds", "--plugin-path", "lib/x.so",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    drift = json.loads((tmp_path / "ds" / "drift.json").read_text())
    assert drift["images"] == 30
    bilinear = drift["variants"]["stretch/bilinear"]
    assert bilinear["top1_agreement"] >= 0.9 and 0 < bilinear["max_abs"] < 10
    assert drift["variants"]["scale-only"]["top1_agreement"] >= 0.95
    text = (tmp_path / "ds" / "config_infer_primary.txt").read_text()
    assert re.search(r"# +stretch/bilinear +top-1 agreement \d+\.\d\d%", text)
    assert _props(tmp_path / "ds" / "config_infer_primary.txt")["network-mode"] == "0"
    assert "stretch/bilinear" in r.stdout and "top-1 agreement" in r.stdout
