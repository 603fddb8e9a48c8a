"""Paddle model zoo: `build_model(preset, seed)` → `paddle.nn.Layer` (B,3,S,S) → logits."""

from pipeline.models.cait import CaiT, build_model

__all__ = ["CaiT", "build_model"]
