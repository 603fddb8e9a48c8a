"""Checkpoint formats, name conversion, safety and the errors a user sees."""

import pickle

import numpy as np
import paddle
import pytest

from pipeline.errors import UserError
from pipeline.models import build_model
from pipeline.presets import get_preset
from pipeline.weights import load_weights, read_checkpoint, timm_to_paddle

TINY = get_preset("cait_xxs_24", depth=1)


def _state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _paddle_to_timm(state):
    """Inverse of timm_to_paddle, to fabricate timm-style checkpoints for tests."""
    out = {}
    for k, v in state.items():
        k = k.replace("patch_embed.patch_embed.", "patch_embed.proj.")
        out[k] = np.ascontiguousarray(v.T) if (k.endswith(".weight") and v.ndim == 2) else v
    return out


def test_pdparams_roundtrip_through_safe_unpickler(tmp_path):
    src = build_model(TINY, seed=1)
    paddle.save(src.state_dict(), str(tmp_path / "w.pdparams"))
    dst = build_model(TINY, seed=2)
    info = load_weights(dst, tmp_path / "w.pdparams")
    assert info["origin"] == "paddle"
    for k, v in _state(src).items():
        np.testing.assert_array_equal(v, dst.state_dict()[k].numpy())


def test_pdparams_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pdparams").write_bytes(pickle.dumps({"cls_token": Evil()}))
    with pytest.raises(UserError, match="refusing to load global builtins.print"):
        read_checkpoint(tmp_path / "evil.pdparams")


def test_safetensors_from_timm_names_converts(tmp_path):
    from safetensors.numpy import save_file

    src = build_model(TINY, seed=3)
    save_file(_paddle_to_timm(_state(src)), str(tmp_path / "w.safetensors"))
    dst = build_model(TINY, seed=4)
    assert load_weights(dst, tmp_path / "w.safetensors")["origin"] == "timm"
    x = paddle.randn([1, 3, 224, 224])
    np.testing.assert_allclose(src(x).numpy(), dst(x).numpy(), atol=1e-6)


def test_timm_to_paddle_is_pure_and_transposes_linears():
    state = {
        "blocks.0.attn.qkv.weight": np.arange(6, dtype=np.float32).reshape(3, 2),
        "patch_embed.proj.weight": np.zeros((4, 3, 16, 16), np.float32),
    }
    before = {k: v.copy() for k, v in state.items()}
    out = timm_to_paddle(state)
    assert out["blocks.0.attn.qkv.weight"].shape == (2, 3)
    assert "patch_embed.patch_embed.weight" in out
    assert all(np.array_equal(state[k], before[k]) for k in state)  # input untouched


def test_pth_checkpoint_with_wrapper_and_module_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    src = build_model(TINY, seed=5)
    sd = {f"module.{k}": torch.from_numpy(v) for k, v in _paddle_to_timm(_state(src)).items()}
    torch.save({"model": sd, "epoch": 3}, tmp_path / "ckpt.pth")
    dst = build_model(TINY, seed=6)
    load_weights(dst, tmp_path / "ckpt.pth")
    np.testing.assert_array_equal(
        dst.state_dict()["cls_token"].numpy(), src.state_dict()["cls_token"].numpy()
    )


def test_weights_for_another_preset_name_it(tmp_path):
    other = build_model(get_preset("cait_xxs_24_384", depth=1))
    paddle.save(other.state_dict(), str(tmp_path / "w.pdparams"))
    with pytest.raises(UserError) as e:
        load_weights(build_model(TINY), tmp_path / "w.pdparams")
    msg = str(e.value)
    assert "mis-shaped: pos_embed (1, 576, 192) vs (1, 196, 192)" in msg


def test_full_weights_of_another_preset_suggest_it(tmp_path):
    from safetensors.numpy import save_file

    from pipeline.presets import PRESETS

    # Shapes only matter: fabricate the cait_xxs_24_384 state dict without building it.
    model = build_model(get_preset("cait_xxs_24_384"))
    save_file(_state(model), str(tmp_path / "w.safetensors"))
    with pytest.raises(UserError, match="these weights fit --model cait_xxs_24_384"):
        load_weights(build_model(PRESETS["cait_xxs_24"]), tmp_path / "w.safetensors")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = _state(build_model(TINY))
    state.pop("head.weight")
    state["extra.weight"] = np.zeros(3, np.float32)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(tmp_path / "w.pdparams"))
    with pytest.raises(UserError, match=r"1 missing: head\.weight; 1 unexpected: extra\.weight"):
        load_weights(build_model(TINY), tmp_path / "w.pdparams")


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("w.pdparams", b"not a pickle", "cannot read weights"),
        ("w.safetensors", b"\x00\x01garbage", "cannot read weights"),
        ("w.bin", b"", "unsupported weights format '.bin'"),
    ],
)
def test_corrupt_or_unknown_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=match):
        read_checkpoint(tmp_path / name)


def test_missing_file():
    with pytest.raises(UserError, match="weights file not found"):
        read_checkpoint("/nonexistent/w.pdparams")
