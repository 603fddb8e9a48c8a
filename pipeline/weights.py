"""Checkpoint loading: Paddle `.pdparams`, timm / DeiT-repo `.safetensors` and `.pth`.

Safety: checkpoints are untrusted input. `.pdparams` is a pickle (Paddle's `paddle.save`), and
`paddle.load` unpickles arbitrary globals; we read it with a restricted unpickler that only admits
the numpy reconstruction functions a state dict needs (the same idea as torch's
`weights_only=True`), so a crafted file cannot run code. `.safetensors` is read with the
`safetensors` library's numpy API (no torch, no code); `.pth` needs torch and is loaded with
`weights_only=True`.

Conversion from timm names is a pure dict → dict function (`timm_to_paddle`).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.presets import PRESETS, Preset

log = logging.getLogger(__name__)

_SAFE_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
}


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _load_pdparams(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = _StateDictUnpickler(f).load()
    if not isinstance(obj, dict):
        raise UserError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    obj.pop("StructuredToParameterName@@", None)  # name table that old paddle.save adds
    return obj


def _load_safetensors(path: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _load_pth(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise UserError(
            f"reading {path.name} needs torch (pip install torch), or convert it to "
            ".safetensors first"
        ) from None
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    return {
        k.removeprefix("module."): v.float().numpy() for k, v in obj.items() if hasattr(v, "numpy")
    }


_LOADERS = {
    ".pdparams": _load_pdparams,
    ".safetensors": _load_safetensors,
    ".pth": _load_pth,
    ".pt": _load_pth,
}


def checkpoint_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """Read a checkpoint into ({name: float32 ndarray} in the Paddle naming, origin)."""
    path = checkpoint_path(path)
    loader = _LOADERS.get(path.suffix)
    if loader is None:
        raise UserError(
            f"unsupported weights format '{path.suffix}' ({path.name}); "
            f"use one of {', '.join(_LOADERS)}"
        )
    try:
        state = loader(path)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — each format's parser raises its own error types
        raise UserError(
            f"cannot read weights {path}: {e} (corrupt or not a {path.suffix} checkpoint?)"
        ) from None
    state = {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
    if "patch_embed.proj.weight" in state:
        return timm_to_paddle(state), "timm"
    return state, "paddle"


def timm_to_paddle(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """timm / DeiT-repo CaiT names → reference Paddle names; Linear weights [out,in] → [in,out]."""
    out = {}
    for k, v in state.items():
        k = k.replace("patch_embed.proj.", "patch_embed.patch_embed.")
        if k.endswith(".weight") and v.ndim == 2:
            v = np.ascontiguousarray(v.T)
        out[k] = v
    return out


def infer_preset(state: dict[str, np.ndarray]) -> Preset | None:
    """The zoo preset whose architecture numbers fit these weights, if any."""
    try:
        C = state["pos_embed"].shape[-1]
        n = state["pos_embed"].shape[1]
        patch = state["patch_embed.patch_embed.weight"].shape[-1]
        heads = state["blocks.0.attn.proj_l.weight"].shape[0]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    except (KeyError, IndexError):
        return None
    for p in PRESETS.values():
        if (p.embed_dim, p.num_patches, p.patch_size, p.num_heads, p.depth) == (
            C,
            n,
            patch,
            heads,
            depth,
        ):
            return p
    return None


def check_state(
    expected: dict[str, tuple], state: dict[str, np.ndarray], preset: Preset, source: str
) -> None:
    """One clear error naming the first offenders (and the preset the weights fit, if any)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
    fit = infer_preset(state)
    hint = f"; these weights fit --model {fit.name}" if fit and fit.name != preset.name else ""
    raise UserError(f"weights {source} do not match {preset.name}: {'; '.join(parts)}{hint}")


def load_weights(model, path: str | Path) -> dict:
    """Load `path` into the Paddle `model`, or raise one clear UserError. Returns provenance."""
    import paddle

    state, origin = read_checkpoint(path)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state(expected, state, model.preset, str(path))
    model.set_state_dict({k: paddle.to_tensor(state[k]) for k in expected})
    return {"path": str(path), "format": Path(path).suffix.lstrip("."), "origin": origin}
