"""`export` end to end, and the bad-input contract: one line, exit 2, no traceback, no debris."""

import json
import os

import pytest


def _no_debris(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(".")] if folder.exists() else []


def test_export_writes_model_manifest_and_parity_line(tmp_path, cli):
    out = tmp_path / "a"
    r = cli("export", "--model", "cait_xxs_24", "--depth", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "parity max |Δlogit|" in r.stderr and "random initialisation" in r.stderr
    import onnx

    m = onnx.load(str(out / "model.onnx"))
    assert m.opset_import[0].version == 17
    assert [i.name for i in m.graph.input] == ["image"]
    assert [o.name for o in m.graph.output] == ["logits"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim[1:]] == [1000]
    man = json.loads((out / "manifest.json").read_text())
    rec = man["stages"]["export"]
    assert rec["parity"]["batch1"]["max_abs"] <= 1e-4 and rec["parity"]["batch3"]["max_abs"] <= 1e-4
    assert len(rec["outputs"]["model.onnx"]) == 64 and "paddle2onnx" in man["versions"]
    assert _no_debris(out) == []
    # unchanged inputs → the stage is not re-run
    r2 = cli("export", "--model", "cait_xxs_24", "--depth", "2", "--out", out)
    assert r2.returncode == 0 and "up to date" in r2.stderr


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "cait_xxs24"], "unknown model 'cait_xxs24'; did you mean cait_xxs_24"),
        (["--model", "cait_xxs_24", "--opset", "22"], "--opset 22 is out of range"),
        (["--model", "cait_xxs_24", "--opset", "12"], "--opset 12 is out of range"),
        (
            ["--model", "cait_xxs_24", "--weights", "/nonexistent.pdparams"],
            "weights file not found",
        ),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, cli, argv, needle):
    out = tmp_path / "o"
    r = cli("export", *argv, "--out", out)
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and needle in err[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_corrupt_weights_and_wrong_preset(tmp_path, cli):
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    r = cli(
        "export",
        "--model",
        "cait_xxs_24",
        "--weights",
        tmp_path / "bad.safetensors",
        "--out",
        tmp_path / "o",
    )
    assert r.returncode == 2 and "cannot read weights" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; chmod cannot deny it")
def test_unwritable_out_dir(tmp_path, cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = cli("export", "--model", "cait_xxs_24", "--depth", "1", "--out", ro / "x")
    assert r.returncode == 2 and "cannot write to output directory" in r.stderr


def test_out_dir_under_a_file_is_refused(tmp_path, cli):
    # Works for root too: a path below a regular file can never be created.
    (tmp_path / "file").write_text("x")
    r = cli("export", "--model", "cait_xxs_24", "--depth", "1", "--out", tmp_path / "file" / "x")
    assert r.returncode == 2 and "cannot write to output directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_verbose_shows_traceback(tmp_path, cli):
    r = cli(
        "--verbose", "export", "--model", "cait_xxs_24", "--opset", "99", "--out", tmp_path / "o"
    )
    assert r.returncode == 2 and "Traceback" in r.stderr


@pytest.mark.full
@pytest.mark.parametrize("name", ["cait_s_36_384", "cait_m_48_448"])
def test_full_size_export(tmp_path, cli, name):
    r = cli("export", "--model", name, "--out", tmp_path / name)
    assert r.returncode == 0, r.stderr
    man = json.loads((tmp_path / name / "manifest.json").read_text())
    assert man["stages"]["export"]["parity"]["batch3"]["max_abs"] <= 1e-4


def test_save_onnx_external_data_keeps_final_name(tmp_path):
    """A model saved with external data must reference `<name>.data`, not a temporary name."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from pipeline.artifacts import save_onnx

    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        [w],
    )
    dst = save_onnx(helper.make_model(g), tmp_path / "m.onnx", external=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    loc = onnx.load(str(dst), load_external_data=False).graph.initializer[0].external_data
    assert {e.key: e.value for e in loc}["location"] == "m.onnx.data"
    back = onnx.load(str(dst))
    np.testing.assert_array_equal(
        numpy_helper.to_array(back.graph.initializer[0]), numpy_helper.to_array(w)
    )
