"""Paddle model zoo: `build_model(preset, seed)` → `paddle.nn.Layer` (B,3,S,S) → logits."""

from pipeline.models.cait import CaiT, build_model

__all__ = ["CaiT", "build_model", "load_model"]


def load_model(preset, weights=None, seed: int = 0):
    """(model, provenance): the Paddle reference for `preset`, with `weights` loaded, or randomly
    initialised with `seed` and a visible warning (accuracy is then meaningless; parity holds)."""
    import logging

    from pipeline.weights import load_weights

    model = build_model(preset, seed=seed)
    if weights:
        return model, load_weights(model, weights)
    logging.getLogger(__name__).warning(
        "warning: no --weights given: random initialisation (seed %d) — accuracy is meaningless, "
        "numerical parity still holds",
        seed,
    )
    return model, {"path": None, "random_seed": seed}
