"""CaiT in PaddlePaddle, faithful to the reference (Touvron et al. 2021; PaddleViT / timm `cait.py`).

Parameter names follow the reference Paddle implementation (PaddleViT), which equal timm's except
the patch-embedding conv (`patch_embed.patch_embed` here, `patch_embed.proj` in timm), so a
`.pdparams` from the reference loads as is and timm checkpoints convert by a pure dict → dict map.

Shapes use `reshape` with 0 ("copy this dim") so that the exported graph keeps batch and token
count dynamic.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from pipeline.presets import Preset

_trunc = nn.initializer.TruncatedNormal(std=0.02)
_zeros = nn.initializer.Constant(0.0)
_ones = nn.initializer.Constant(1.0)


def _linear(i: int, o: int) -> nn.Linear:
    return nn.Linear(
        i,
        o,
        weight_attr=paddle.ParamAttr(initializer=_trunc),
        bias_attr=paddle.ParamAttr(initializer=_zeros),
    )


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(
        dim,
        epsilon=1e-6,
        weight_attr=paddle.ParamAttr(initializer=_ones),
        bias_attr=paddle.ParamAttr(initializer=_zeros),
    )


class PatchEmbedding(nn.Layer):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_embed = nn.Conv2D(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x):
        x = self.patch_embed(x)  # (B, C, h, w)
        return x.flatten(2).transpose([0, 2, 1])  # (B, N, C)


class Mlp(nn.Layer):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = _linear(dim, hidden)
        self.fc2 = _linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TalkingHeadAttention(nn.Layer):
    """Multi-head self-attention with learned H×H mixing of the heads before and after softmax."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = _linear(dim, dim * 3)
        self.proj_l = _linear(num_heads, num_heads)
        self.proj_w = _linear(num_heads, num_heads)
        self.proj = _linear(dim, dim)

    def forward(self, x):
        H, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape([0, 0, 3, H, d]).transpose([2, 0, 3, 1, 4])  # (3, B, H, N, d)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = paddle.matmul(q, k, transpose_y=True)  # (B, H, N, N)
        attn = self.proj_l(attn.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])
        attn = F.softmax(attn, axis=-1)
        attn = self.proj_w(attn.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, 0, H * d])
        return self.proj(x)


class ClassAttention(nn.Layer):
    """Only the class token queries; keys and values range over [class token, patches]."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.q = _linear(dim, dim)
        self.k = _linear(dim, dim)
        self.v = _linear(dim, dim)
        self.proj = _linear(dim, dim)

    def attention(self, x):
        """The class token's attention over [class token, patches]: (B, H, 1, T), rows sum to 1
        (what `explain` draws; `forward` uses the same)."""
        H, d = self.num_heads, self.head_dim
        q = self.q(x[:, :1]).reshape([0, 1, H, d]).transpose([0, 2, 1, 3]) * self.scale
        k = self.k(x).reshape([0, 0, H, d]).transpose([0, 2, 1, 3])
        return F.softmax(paddle.matmul(q, k, transpose_y=True), axis=-1)

    def forward(self, x):
        H, d = self.num_heads, self.head_dim
        attn = self.attention(x)  # (B, H, 1, T)
        v = self.v(x).reshape([0, 0, H, d]).transpose([0, 2, 1, 3])
        x_cls = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, 1, H * d])
        return self.proj(x_cls)


class _LayerScale(nn.Layer):
    def _gammas(self, dim: int, init_scale: float):
        attr = lambda: paddle.ParamAttr(initializer=nn.initializer.Constant(init_scale))  # noqa: E731
        self.gamma_1 = self.create_parameter([dim], attr=attr())
        self.gamma_2 = self.create_parameter([dim], attr=attr())


class LayerScaleBlock(_LayerScale):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, init_scale: float):
        super().__init__()
        self.norm1 = _norm(dim)
        self.attn = TalkingHeadAttention(dim, num_heads)
        self.norm2 = _norm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self._gammas(dim, init_scale)

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class LayerScaleBlockClassAttention(_LayerScale):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, init_scale: float):
        super().__init__()
        self.norm1 = _norm(dim)
        self.attn = ClassAttention(dim, num_heads)
        self.norm2 = _norm(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self._gammas(dim, init_scale)

    def forward(self, x, x_cls):
        u = paddle.concat([x_cls, x], axis=1)
        x_cls = x_cls + self.gamma_1 * self.attn(self.norm1(u))
        return x_cls + self.gamma_2 * self.mlp(self.norm2(x_cls))


class CaiT(nn.Layer):
    def __init__(self, preset: Preset):
        super().__init__()
        C = preset.embed_dim
        self.preset = preset
        self.patch_embed = PatchEmbedding(preset.patch_size, preset.in_chans, C)
        self.cls_token = self.create_parameter([1, 1, C], attr=paddle.ParamAttr(initializer=_trunc))
        self.pos_embed = self.create_parameter(
            [1, preset.num_patches, C], attr=paddle.ParamAttr(initializer=_trunc)
        )
        args = (C, preset.num_heads, preset.mlp_ratio, preset.init_scale)
        self.blocks = nn.LayerList([LayerScaleBlock(*args) for _ in range(preset.depth)])
        self.blocks_token_only = nn.LayerList(
            [LayerScaleBlockClassAttention(*args) for _ in range(preset.depth_token_only)]
        )
        self.norm = _norm(C)
        self.head = _linear(C, preset.num_classes)

    def forward_features(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        cls = self.cls_token.expand([paddle.shape(x)[0], -1, -1])
        for blk in self.blocks_token_only:
            cls = blk(x, cls)
        x = self.norm(paddle.concat([cls, x], axis=1))
        return x[:, 0]

    def forward(self, x):
        return self.head(self.forward_features(x))


def build_model(preset: Preset, seed: int = 0) -> CaiT:
    """A CaiT for `preset` in eval mode, randomly initialised with `seed` (reproducible)."""
    paddle.seed(seed)
    model = CaiT(preset)
    model.eval()
    return model
