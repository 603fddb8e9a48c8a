"""The attention choice's rule, driven with recorded timings (median ms per batch)."""

import numpy as np
import pytest

from pipeline.contract import CLASS_ATTENTION, PLUGIN_OPS, TALKING_HEADS
from pipeline.errors import UserError
from pipeline.trt.choice import NOISE, Candidate, choose, median_ms

ALL = [
    Candidate.of(PLUGIN_OPS),
    Candidate.of({TALKING_HEADS}),
    Candidate.of({CLASS_ATTENTION}),
    Candidate.of(()),
]


def test_candidate_names():
    assert [c.name for c in ALL] == ["plugin", "th", "ca", "plugin-free"]


@pytest.mark.parametrize(
    "timings,winner",
    [
        # a plugin engine clearly faster than its plugin-free twin is kept
        ({"plugin": 1.00, "th": 1.20, "ca": 1.45, "plugin-free": 1.50}, "plugin"),
        # measured slower: never shipped, whatever a model of the kernel predicted
        ({"plugin": 1.60, "th": 1.70, "ca": 1.55, "plugin-free": 1.50}, "plugin-free"),
        # faster, but within the noise: the plugin-free engine wins the tie
        ({"plugin": 1.47, "th": 1.48, "ca": 1.49, "plugin-free": 1.50}, "plugin-free"),
        # two plugin candidates within the noise of each other: fewer plugin ops wins
        ({"plugin": 1.00, "th": 1.02, "ca": 1.45, "plugin-free": 1.50}, "th"),
        # one fused op pays, the other does not
        ({"plugin": 1.30, "th": 1.60, "ca": 1.20, "plugin-free": 1.50}, "ca"),
    ],
)
def test_rule_on_recorded_timings(timings, winner):
    choice = choose(ALL, timings)
    assert choice.winner == winner
    assert {row["candidate"] for row in choice.table} == set(timings)
    assert choice.as_record()["rule"].startswith("fastest median")


def test_the_baseline_is_the_candidate_with_fewest_plugins():
    """th=plugin,ca=auto: no plugin-free candidate; `plugin` must beat `th` by the noise."""
    cands = [Candidate.of(PLUGIN_OPS), Candidate.of({TALKING_HEADS})]
    assert choose(cands, {"plugin": 0.99, "th": 1.00}).winner == "th"
    assert choose(cands, {"plugin": 0.90, "th": 1.00}).winner == "plugin"


def test_a_shipped_plugin_engine_always_beats_the_plugin_free_one():
    rng = np.random.default_rng(0)
    for _ in range(500):
        timings = dict(zip([c.name for c in ALL], rng.uniform(0.8, 1.2, 4)))
        choice = choose(ALL, timings)
        winner = next(c for c in ALL if c.name == choice.winner)
        if winner.plugin_ops:
            assert timings[winner.name] < timings["plugin-free"] * (1 - NOISE)
        assert timings[winner.name] <= min(timings.values()) * (1 + NOISE) or not winner.plugin_ops


def test_bad_timings_are_one_clear_error():
    with pytest.raises(UserError, match="no timing for candidate"):
        choose(ALL, {"plugin": 1.0})
    with pytest.raises(UserError, match="not a positive number"):
        choose(ALL, {"plugin": 1.0, "th": 0.0, "ca": 1.0, "plugin-free": 1.0})
    with pytest.raises(UserError, match="no timing samples"):
        median_ms([])
