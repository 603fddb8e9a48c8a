"""NumPy reference of the fused-op contract (docs/architecture.md, "fused operators"), in float64."""

import numpy as np


def talking_heads(qkv, num_heads, scale, pre_weight, pre_bias, post_weight, post_bias):
    """qkv (B, N, 3C) laid out (3, H, d) on the last axis -> (B, N, C)."""
    qkv = np.asarray(qkv, np.float64)
    B, N, C3 = qkv.shape
    H = num_heads
    d = C3 // 3 // H
    x = qkv.reshape(B, N, 3, H, d).transpose(2, 0, 3, 1, 4)  # (3, B, H, N, d)
    q, k, v = x[0], x[1], x[2]
    s = scale * np.einsum("bhid,bhjd->bhij", q, k)
    W1 = np.asarray(pre_weight, np.float64).reshape(H, H)
    W2 = np.asarray(post_weight, np.float64).reshape(H, H)
    s = np.einsum("oh,bhij->boij", W1, s) + np.asarray(pre_bias, np.float64)[None, :, None, None]
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    p = np.einsum("oh,bhij->boij", W2, p) + np.asarray(post_bias, np.float64)[None, :, None, None]
    o = np.einsum("bhij,bhjd->bhid", p, v)  # (B, H, N, d)
    return o.transpose(0, 2, 1, 3).reshape(B, N, H * d)


def class_attention(q, k, v, num_heads, scale):
    """q (B, 1, C), k and v (B, T, C) -> (B, 1, C)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, T, C = k.shape
    H = num_heads
    d = C // H
    qh = q.reshape(B, 1, H, d).transpose(0, 2, 1, 3)
    kh = k.reshape(B, T, H, d).transpose(0, 2, 1, 3)
    vh = v.reshape(B, T, H, d).transpose(0, 2, 1, 3)
    s = scale * np.einsum("bhid,bhjd->bhij", qh, kh)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p, vh).transpose(0, 2, 1, 3).reshape(B, 1, C)
