"""Shared artifacts for the precision tests, built once per session (budget: 8 min on 2 cores).

- `digits`: the trained `cait_digits` fixture exported to ONNX + its data written as PNG folders
  (train split for calibration, held-out split for accuracy). Skips if the weights are missing.
- `xxs1`: cait_xxs_24 at depth 1 (random weights, real 224-px graph) and a folder of synthetic
  ImageNet JPEGs: structure tests and the stage chain.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
# CAIT_DIGITS_WEIGHTS: try a freshly trained checkpoint before it replaces the committed fixture
DIGITS_WEIGHTS = Path(
    os.environ.get("CAIT_DIGITS_WEIGHTS", ROOT / "pipeline" / "fixtures" / "cait_digits.pdparams")
)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    if not DIGITS_WEIGHTS.exists():
        pytest.skip(f"trained fixture {DIGITS_WEIGHTS} missing (scripts/train_digits.py)")
    from pipeline.data.digits import write_digits_split
    from pipeline.presets import get_preset
    from pipeline.stages.export import export

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
    from pipeline.data.synthetic import write_synthetic_imagenet
    from pipeline.presets import get_preset
    from pipeline.stages.export import export

    logging.getLogger("pipeline").setLevel(logging.WARNING)
    root = tmp_path_factory.mktemp("xxs1")
    preset = get_preset("cait_xxs_24", depth=1)
    out = root / "art"
    export(preset, out)
    jpegs = root / "jpegs"
    write_synthetic_imagenet(jpegs, 40, size=72, num_classes=10)
    return SimpleNamespace(preset=preset, out=out, onnx=out / "model.onnx", jpegs=jpegs)


def float_types_consistent(model) -> list[str]:
    """Strong typing: every node's float inputs share one dtype (Cast and Q/DQ excepted).
    Returns the offending nodes (empty = consistent)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in list(inferred.graph.value_info)
        + list(inferred.graph.input)
        + list(inferred.graph.output)
    }
    types.update({i.name: i.data_type for i in model.graph.initializer})
    bad = []
    for n in model.graph.node:
        if n.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear"):
            continue
        fl = {types.get(i) for i in n.input if i and types.get(i) in (1, 10)}
        if len(fl) > 1:
            bad.append(f"{n.name} ({n.op_type}): {sorted(fl)}")
    return bad
