"""`python -m pipeline fuse`: table of rewrites, parity line, report (JSON + markdown), manifest."""

from __future__ import annotations

import json


def test_fuse_cli_prints_table_parity_and_records(cli, exported, tmp_path):
    src = exported("cait_xxs_24", 2)  # its export manifest says depth 2
    out = tmp_path / "out" / "model.fused.onnx"
    r = cli("fuse", src, "-o", out, "--verify", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    table = {
        line.split()[0]: int(line.split()[1])
        for line in r.stdout.splitlines()
        if line.split()
        and line.split()[0].startswith(("sanitize", "canon", "fold", "fuse", "merge"))
    }
    assert table["fuse_talking_heads"] == 2 and table["fuse_class_attention"] == 2
    assert table["fold_attention_scale"] == 4 and table["fold_layerscale"] == 8
    assert table["merge_class_kv"] == 2
    assert "parity: max |Δlogit|" in r.stdout
    rec = json.loads((out.parent / "manifest.json").read_text())["stages"]["fuse"]
    assert rec["expected_from"].startswith("manifest")
    assert rec["verify"]["max_abs"] <= 1e-4
    md = (tmp_path / "r.md").read_text()
    assert "H·N² score tensors" in md and "| fuse_talking_heads | 2 |" in md
    # Unchanged input and settings: the stage is not re-run.
    r2 = cli("fuse", src, "-o", out, "--verify", "--report", tmp_path / "r.json")
    assert r2.returncode == 0 and "up to date" in r2.stderr + r2.stdout
