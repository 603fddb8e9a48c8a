"""The CaiT model zoo as a table (timm `cait.py` style: a preset is a few architecture numbers).

Parameter counts and FLOPs are derived from the numbers, never typed in; the tests compare the
derived counts with the reference implementation's.
"""

from __future__ import annotations

import dataclasses
import difflib

from pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    img_size: int
    embed_dim: int
    depth: int
    num_heads: int
    init_scale: float
    patch_size: int = 16
    depth_token_only: int = 2
    mlp_ratio: int = 4
    num_classes: int = 1000
    in_chans: int = 3
    zoo: bool = True  # False for test fixtures (hidden from `models` unless --all)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def reduced(self, depth: int) -> Preset:
        """Same architecture at another depth: how CI runs the big presets on the same code path."""
        if depth < 1:
            raise UserError(f"--depth must be >= 1, got {depth}")
        return dataclasses.replace(self, depth=depth)

    # ---- derived figures -------------------------------------------------------------------
    @property
    def params(self) -> int:
        C, H, P = self.embed_dim, self.num_heads, self.patch_size
        hidden = C * self.mlp_ratio
        linear = lambda i, o: i * o + o  # noqa: E731
        norm = 2 * C
        mlp = linear(C, hidden) + linear(hidden, C)
        block = norm + linear(C, 3 * C) + 2 * linear(H, H) + linear(C, C) + norm + mlp + 2 * C
        cls_block = norm + 4 * linear(C, C) + norm + mlp + 2 * C
        return (
            self.in_chans * P * P * C
            + C  # patch embedding conv
            + C
            + self.num_patches * C  # cls token, position embedding
            + self.depth * block
            + self.depth_token_only * cls_block
            + norm
            + linear(C, self.num_classes)
        )

    @property
    def gflops(self) -> float:
        """2 × multiply-adds of one image (biases, norms, softmax and GELU not counted)."""
        C, H, N, P = self.embed_dim, self.num_heads, self.num_patches, self.patch_size
        T = N + 1
        hidden = C * self.mlp_ratio
        macs = N * C * self.in_chans * P * P
        per_block = (
            N * C * 3 * C  # qkv
            + 2 * N * N * C  # q·kᵀ and p·v over all heads
            + 2 * N * N * H * H  # talking-heads pre- and post-softmax mixing
            + N * C * C  # output projection
            + 2 * N * C * hidden
        )  # MLP
        per_cls = C * C + 2 * T * C * C + 2 * T * C + C * C + 2 * C * hidden
        macs += self.depth * per_block + self.depth_token_only * per_cls + C * self.num_classes
        return 2 * macs / 1e9

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("zoo")
        d.update(params=self.params, gflops=round(self.gflops, 3), head_dim=self.head_dim)
        return d


_ZOO = [
    #      name               img  dim  depth heads init
    Preset("cait_xxs_24", 224, 192, 24, 4, 1e-5),
    Preset("cait_xxs_36", 224, 192, 36, 4, 1e-5),
    Preset("cait_s_24", 224, 384, 24, 8, 1e-5),
    Preset("cait_xxs_24_384", 384, 192, 24, 4, 1e-5),
    Preset("cait_xxs_36_384", 384, 192, 36, 4, 1e-5),
    Preset("cait_xs_24_384", 384, 288, 24, 6, 1e-5),
    Preset("cait_s_24_384", 384, 384, 24, 8, 1e-5),
    Preset("cait_s_36_384", 384, 384, 36, 8, 1e-6),
    Preset("cait_m_36_384", 384, 768, 36, 16, 1e-6),
    Preset("cait_m_48_448", 448, 768, 48, 16, 1e-6),
]

# Test fixture: trained on scikit-learn's digits (8×8 upsampled to 32 px) by
# scripts/train_digits.py, so FP16/INT8 accuracy drops are measured on real predictions.
_FIXTURES = [
    Preset("cait_digits", 32, 192, 4, 4, 1e-1, patch_size=4, num_classes=10, zoo=False),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _ZOO + _FIXTURES}


def get_preset(name: str, depth: int | None = None) -> Preset:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown model '{name}'{hint} (python -m pipeline models lists them)")
    p = PRESETS[name]
    return p.reduced(depth) if depth is not None else p
