"""Which engine to ship when the fused ops can run as plugins or as plain ONNX: a pure function of
measured timings, so the rule lives once — the build on a TensorRT host, the target script (via
`python -m pipeline choose`) and the tests all call `choose`.

The rule, for candidates that differ in which fused ops run as plugins:
1. The baseline is the candidate with the fewest plugin ops (plugin-free when `auto` covers every
   op). A candidate with more plugin ops is eligible only if it is faster than the baseline by
   more than `NOISE`: a plugin engine measured slower than (or as fast as) its plugin-free twin is
   never shipped.
2. Among the eligible, the fastest wins; candidates within `NOISE` of it tie, and a tie goes to
   the one with fewer plugin ops (no plugin library to deploy, TensorRT's own kernels), then the
   faster.

Timings are the median milliseconds per batch at the profile's opt batch, measured like for like
(same harness, warm-up, CUDA graphs, no data transfers).
"""

from __future__ import annotations

import dataclasses
import statistics

from pipeline.contract import PLUGIN_OPS, SPECS
from pipeline.errors import UserError

NOISE = 0.03  # relative: medians of one engine measured twice differ by ~1 % on a quiet GPU


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One way to run the fused ops: `plugin_ops` stay plugin nodes, the others plain ONNX."""

    name: str  # "plugin" (all), "plugin-free", else the plugins' short names ("th", "ca")
    plugin_ops: frozenset

    @classmethod
    def of(cls, plugin_ops) -> Candidate:
        ops = frozenset(plugin_ops)
        if ops == PLUGIN_OPS:
            return cls("plugin", ops)
        return cls("+".join(sorted(SPECS[op].short for op in ops)) or "plugin-free", ops)


@dataclasses.dataclass(frozen=True)
class Choice:
    winner: str
    reason: str
    table: list  # [{"candidate", "plugin_ops", "median_ms", "vs_baseline", "eligible"}]

    def as_record(self) -> dict:
        return {
            "winner": self.winner,
            "reason": self.reason,
            "candidates": self.table,
            "rule": rule_text(),
        }


def rule_text() -> str:
    return (
        f"fastest median at the opt batch; a candidate with more plugin ops than the baseline "
        f"(fewest plugin ops) must beat it by more than {NOISE:.0%}; ties within "
        f"{NOISE:.0%} go to fewer plugin ops"
    )


def choose(candidates: list[Candidate], median_ms: dict[str, float]) -> Choice:
    """The candidate to ship (see the module docstring); UserError when a timing is missing."""
    if not candidates:
        raise UserError("no candidate engines to choose from")
    missing = [c.name for c in candidates if c.name not in median_ms]
    if missing:
        raise UserError(
            f"no timing for candidate(s) {', '.join(missing)}: every candidate must "
            "be built and timed"
        )
    bad = [n for n, t in median_ms.items() if not t > 0]
    if bad:
        raise UserError(f"timing of {', '.join(bad)} is not a positive number of milliseconds")
    fewest = min(len(c.plugin_ops) for c in candidates)
    baselines = [c for c in candidates if len(c.plugin_ops) == fewest]
    base = min(baselines, key=lambda c: median_ms[c.name])
    t_base = median_ms[base.name]

    def eligible(c: Candidate) -> bool:
        return len(c.plugin_ops) == fewest or median_ms[c.name] < t_base * (1 - NOISE)

    pool = [c for c in candidates if eligible(c)]
    t_best = min(median_ms[c.name] for c in pool)
    ties = [c for c in pool if median_ms[c.name] <= t_best * (1 + NOISE)]
    winner = min(ties, key=lambda c: (len(c.plugin_ops), median_ms[c.name]))
    table = [
        {
            "candidate": c.name,
            "plugin_ops": sorted(c.plugin_ops),
            "median_ms": round(median_ms[c.name], 4),
            "vs_baseline": round(median_ms[c.name] / t_base, 4),
            "eligible": eligible(c),
        }
        for c in candidates
    ]
    return Choice(winner.name, _reason(winner, base, median_ms, candidates, eligible), table)


def _reason(winner, base, median_ms, candidates, eligible) -> str:
    t = median_ms[winner.name]
    if winner.name == base.name:
        slower = [c.name for c in candidates if c.name != base.name and not eligible(c)]
        if slower:
            return (
                f"{winner.name}: {t:.3f} ms; {', '.join(slower)} not faster than it by more "
                f"than {NOISE:.0%}"
            )
        return f"{winner.name}: {t:.3f} ms, within {NOISE:.0%} of the fastest (fewer plugin ops)"
    gain = median_ms[base.name] / t
    return f"{winner.name}: {t:.3f} ms, {gain:.2f}× faster than {base.name}"


def median_ms(samples) -> float:
    """Median of per-batch times in milliseconds."""
    values = [float(s) for s in samples]
    if not values:
        raise UserError("no timing samples")
    return statistics.median(values)
