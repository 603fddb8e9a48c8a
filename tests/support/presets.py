"""The zoo presets at the depth CI runs them: the same code path, a fraction of the cost."""

from pipeline.presets import PRESETS

ZOO = [p.name for p in PRESETS.values() if p.zoo]
# The M presets (768 dim, 576/784 tokens) and the 36-block S preset cost most: depth 1 there.
CI_DEPTH = {name: 1 if name.startswith(("cait_m_", "cait_s_36")) else 2 for name in ZOO}
