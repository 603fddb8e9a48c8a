"""The `quantize`, `eval` and `parity` commands: results on stdout, one-line errors, exit codes."""

from __future__ import annotations

import ast
import json
import shutil

import pytest
from PIL import Image


def _one_error_line(r):
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def art(xxs1, tmp_path_factory):
    """A copy of the depth-1 artifacts with an fp16 stage, for the commands to find."""
    from pipeline.stages.precision import to_fp16

    d = tmp_path_factory.mktemp("cli") / "art"
    shutil.copytree(xxs1.out, d)
    to_fp16(d / "model.onnx", d / "model.fp16.onnx")
    return d


def test_eval_prints_accuracy_and_writes_json(cli, art, xxs1, tmp_path):
    out = tmp_path / "e.json"
    r = cli(
        "eval",
        "--model",
        "cait_xxs_24",
        "--depth",
        1,
        "--out",
        art,
        "--data",
        xxs1.jpegs,
        "--backend",
        "fp16",
        "--limit",
        6,
        "--json",
        out,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("{'acc_top1'"))
    acc = ast.literal_eval(line)
    assert set(acc) == {"acc_top1", "acc_top5"} and 0 <= acc["acc_top1"] <= acc["acc_top5"] <= 1
    rec = json.loads(out.read_text())
    assert rec["images"] == 6 and rec["backend"] == "fp16" and rec["acc_top5"] == acc["acc_top5"]
    assert "eval [fp16]" in r.stderr  # the progress bar


def test_eval_bad_inputs(cli, art, xxs1, tmp_path):
    base = ["eval", "--model", "cait_xxs_24", "--depth", 1, "--out", art, "--backend", "onnx"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in _one_error_line(cli(*base, "--data", empty))
    bad = tmp_path / "bad"
    (bad / "cat").mkdir(parents=True)
    Image.new("RGB", (40, 40), (200, 10, 10)).save(bad / "cat" / "ok.png")
    (bad / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    assert "broken.png" in _one_error_line(cli(*base, "--data", bad))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (40, 40)).save(flat / "a.png")
    Image.new("RGB", (40, 40)).save(flat / "b.png")
    (tmp_path / "labels.txt").write_text("a.png 1\nc.png 2\n")
    msg = _one_error_line(cli(*base, "--data", flat, "--labels", tmp_path / "labels.txt"))
    assert "c.png" in msg
    assert "no labels" in _one_error_line(cli(*base, "--data", flat))
    assert "no *.engine" in _one_error_line(
        cli(
            "eval",
            "--model",
            "cait_xxs_24",
            "--depth",
            1,
            "--out",
            art,
            "--backend",
            "engine",
            "--data",
            xxs1.jpegs,
        )
    )
    missing = tmp_path / "nowhere"
    assert "no model.int8.onnx" in _one_error_line(
        cli(
            "eval",
            "--model",
            "cait_xxs_24",
            "--depth",
            1,
            "--out",
            missing,
            "--backend",
            "int8",
            "--data",
            xxs1.jpegs,
        )
    )


def test_quantize_needs_calib_data(cli, art, tmp_path):
    msg = _one_error_line(cli("quantize", "--model", "cait_xxs_24", "--out", art))
    assert "--calib-data" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in _one_error_line(
        cli("quantize", "--model", "cait_xxs_24", "--depth", 1, "--out", art, "--calib-data", empty)
    )
    assert "--calib-data" in _one_error_line(
        cli("build", "--model", "cait_xxs_24", "--int8", "--out", tmp_path / "b")
    )


def test_quantize_then_parity_cli(cli, art, xxs1, tmp_path):
    r = cli(
        "quantize",
        "--model",
        "cait_xxs_24",
        "--depth",
        1,
        "--out",
        art,
        "--calib-data",
        xxs1.jpegs,
        "--calib-images",
        8,
        "--calib-method",
        "percentile",
        "--parity-images",
        16,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (art / "model.int8.onnx").exists() and (art / "calib.json").exists()
    r = cli("parity", "--model", "cait_xxs_24", "--depth", 1, "--out", art, "--images", 4)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((art / "parity.json").read_text())
    assert list(rec["stages"]) == ["paddle", "onnx", "fp16", "int8"] and not rec["labelled"]
    # thresholds are data: an impossible one fails the ladder with exit 1, report still written
    th = tmp_path / "th.json"
    th.write_text(json.dumps({"int8": {"max_abs_logit": 1e-9}}))
    r = cli(
        "parity",
        "--model",
        "cait_xxs_24",
        "--depth",
        1,
        "--out",
        art,
        "--images",
        2,
        "--thresholds",
        th,
    )
    assert r.returncode == 1 and "int8: max |Δlogit|" in r.stderr
    assert "**FAIL**" in (art / "parity.md").read_text()


@pytest.mark.slow
def test_build_int8_end_to_end(cli, xxs1, tmp_path):
    """Acceptance: `build --model cait_xxs_24 --int8 --calib-data <JPEG dir>` completes and its
    parity.md shows every stage it made (full depth, random weights: agreement, not accuracy)."""
    out = tmp_path / "b"
    r = cli(
        "build",
        "--model",
        "cait_xxs_24",
        "--int8",
        "--calib-data",
        xxs1.jpegs,
        "--out",
        out,
        "--images",
        8,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    md = (out / "parity.md").read_text()
    for row in ("| paddle |", "| onnx |", "| fused |", "| int8 |"):
        assert row in md
    rec = json.loads((out / "parity.json").read_text())
    assert rec["violations"] == [] and rec["stages"]["int8"]["cosine_min"] > 0.999
    man = json.loads((out / "manifest.json").read_text())["stages"]
    # patch conv + 24 × (qkv, proj, fc1, fc2) + 2 × (q, merged kv, proj, fc1, fc2) + head
    assert man["int8"]["quantized_nodes"] == 1 + 24 * 4 + 2 * 5 + 1


def test_parity_with_a_truncated_artifact_is_one_line_and_fast(cli, tmp_path):
    # Every ONNX stage reads artifacts through pipeline.onnx_io.load_onnx: a damaged file is
    # one line and exit 2, and the ladder fails before the slow Paddle rung runs.
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x05trunc" * 16)
    r = cli("parity", "--model", "cait_xxs_24", "--depth", "1", "--out", tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not a readable ONNX model" in errors[0]
    assert "Traceback" not in r.stderr and "parity [paddle]" not in r.stderr
    assert not (tmp_path / "parity.json").exists()
