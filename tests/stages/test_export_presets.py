"""Every zoo preset exports on the same code path (reduced depth in CI; full size is opt-in).

The exports carry strong LayerScale γ (tests/support/weights.py): with the presets' 1e-5 a
mis-exported block would be invisible in the logits and the parity check could not fail."""

import json

import onnx
import pytest

from pipeline.presets import PRESETS
from tests.support.presets import CI_DEPTH, ZOO


@pytest.mark.parametrize("name", ZOO)
def test_reduced_depth_export_has_parity(exported, name):
    path = exported(name, CI_DEPTH[name])
    p = PRESETS[name]
    rec = json.loads((path.parent / "manifest.json").read_text())["stages"]["export"]
    assert rec["parity"]["batch1"]["max_abs"] <= 1e-4
    assert rec["parity"]["batch3"]["max_abs"] <= 1e-4
    assert rec["settings"]["preset"]["embed_dim"] == p.embed_dim
    m = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [3, p.img_size, p.img_size]
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) <= 20
