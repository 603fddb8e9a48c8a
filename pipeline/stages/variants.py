"""Attention variants: which fused ops run as TensorRT plugins and which as plain ONNX.

`--attention` chooses per fused op: `plugin`, `onnx` or `auto` for all of them, or per op by
short name, e.g. `th=plugin,ca=auto` (ops not named are `auto`). `auto` leaves the choice to a
measurement on the target: every combination of the `auto` ops becomes a candidate model, and
the engine stage builds and times them and keeps the fastest (the rule: `pipeline/trt/choice.py`).

The candidates come from one fuse run, cheaply: the fused model holds plugin nodes for every op
that may be a plugin, and each other candidate lowers some of them to their reference
decomposition (`lower_to_onnx`), directly on the fp16/int8/fp32 model TensorRT gets — no second
fuse, calibration or fp16 conversion — starting from whichever model already made leaves the
fewest nodes to lower. Each candidate holds exactly its plugin nodes; the plugin-free one is
checked against the model it came from with ONNX Runtime (plugin nodes run the same reference
there, so only a wrong lowering can make them differ).

    variants_stage(model_path, candidates, kept_plugins) -> StageRecord
        outputs: {candidate name: path}; the candidate whose plugin ops are `kept_plugins` is
        `model_path` itself, the others are candidates/<stem>.<name>.onnx
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.artifacts import (
    FUSED,
    StageRecord,
    candidate_path,
    finish,
    onnx_hash,
    reuse,
    save_onnx,
)
from pipeline.contract import BY_SHORT, PLUGIN_OPS, SPECS
from pipeline.errors import UserError
from pipeline.numerics import PARITY_TOL, sample_images
from pipeline.onnx_io import image_input, load_onnx
from pipeline.passes import PassContext, lower_to_onnx, run_passes
from pipeline.runners.ort import OrtRunner
from pipeline.trt.choice import Candidate

log = logging.getLogger(__name__)

MODES = ("plugin", "onnx", "auto")
# Lowered vs plugin model on ONNX Runtime: the same reference ops run in both, so they agree to
# rounding; fp16 graphs round more.
VARIANT_TOL = {"fp32": PARITY_TOL, "low": 1e-2}


def parse_attention(text: str) -> dict[str, str]:
    """`auto` | `plugin` | `onnx` | `th=plugin,ca=onnx` → {op: mode} for every fused op."""
    text = str(text).strip()
    if text in MODES:
        return {op: text for op in sorted(PLUGIN_OPS)}
    choice = {op: "auto" for op in sorted(PLUGIN_OPS)}
    for part in text.split(","):
        short, _, mode = part.strip().partition("=")
        if short not in BY_SHORT or mode not in MODES:
            names = ", ".join(f"{s} ({op})" for s, op in sorted(BY_SHORT.items()))
            raise UserError(
                f"--attention {text!r}: write auto, plugin, onnx, or per op "
                f"OP=MODE[,OP=MODE] with OP one of {names} and MODE one of {', '.join(MODES)}"
            )
        choice[BY_SHORT[short]] = mode
    return choice


def describe(choice: dict[str, str]) -> str:
    modes = set(choice.values())
    if len(modes) == 1:
        return modes.pop()
    return ",".join(f"{SPECS[op].short}={mode}" for op, mode in sorted(choice.items()))


def candidates(choice: dict[str, str], lowered=frozenset()) -> list[Candidate]:
    """Every combination the choice allows, most plugins first. `lowered`: ops the fused model
    already holds as plain ONNX (chosen so, or past a plugin limit under `auto`)."""
    options = []
    for op, mode in sorted(choice.items()):
        if mode == "plugin" and op in lowered:
            raise UserError(
                f"--attention {SPECS[op].short}=plugin: that op was fused as plain ONNX"
            )
        options.append(
            [True]
            if mode == "plugin"
            else [False]
            if mode == "onnx" or op in lowered
            else [True, False]
        )
    ops = sorted(choice)
    combos = {
        frozenset(op for op, on in zip(ops, flags) if on) for flags in itertools.product(*options)
    }
    return [Candidate.of(c) for c in sorted(combos, key=lambda c: (-len(c), sorted(c)))]


def _check_numerics(model_path, plugin_free, image) -> float:
    """The plugin-free twin against the model it came from, on ONNX Runtime (where plugin nodes
    run the same reference decomposition, so only a wrong lowering can differ). One candidate
    suffices: the others lower subsets of the same ops with the same pass."""
    x = sample_images(1, image.size, seed=11, channels=image.channels)
    diff = float(np.abs(OrtRunner(plugin_free).run(x) - OrtRunner(model_path).run(x)).max())
    tol = VARIANT_TOL["fp32" if Path(model_path).name == FUSED else "low"]
    if not diff <= tol:
        raise UserError(
            f"the plugin-free candidate of {Path(model_path).name} differs from it "
            f"by {diff:.3g} > {tol:g} (ONNX Runtime): the lowering is wrong"
        )
    return diff


def variants_stage(
    model_path, candidates_: list[Candidate], kept_plugins, *, force: bool = False
) -> StageRecord:
    """Write each candidate model derived from `model_path` (see the module docstring)."""
    model_path = Path(model_path)
    kept_plugins = frozenset(kept_plugins)
    folder = model_path.parent
    outputs = {
        c.name: (model_path if c.plugin_ops == kept_plugins else candidate_path(model_path, c.name))
        for c in candidates_
    }
    stage = f"variants/{model_path.name}"
    inputs = {model_path.name: onnx_hash(model_path)}
    settings = {"candidates": {c.name: sorted(c.plugin_ops) for c in candidates_}}
    fresh = reuse(folder, stage, inputs, settings, outputs, force)
    if fresh:
        return fresh
    t0 = time.perf_counter()
    model = load_onnx(model_path)
    figures = {}
    nodes = Counter(n.op_type for n in model.graph.node if n.op_type in PLUGIN_OPS)
    made = {kept_plugins: model}  # plugin ops → model: a later candidate may start from one
    for c in candidates_:  # most plugins first
        if c.plugin_ops == kept_plugins:
            continue
        if not c.plugin_ops <= kept_plugins:
            raise UserError(f"candidate {c.name} needs plugin nodes that {model_path.name} lacks")
        # start from the model that leaves the fewest nodes to lower (24 talking-heads nodes
        # cost seconds each time, 2 class-attention nodes little)
        source = min(
            (ops for ops in made if c.plugin_ops <= ops),
            key=lambda ops: sum(nodes[o] for o in ops - c.plugin_ops),
        )
        lowered, rows = run_passes(
            made[source], PassContext(lower=source - c.plugin_ops), passes=[lower_to_onnx]
        )
        made[c.plugin_ops] = lowered
        save_onnx(lowered, outputs[c.name])
        left = {n.op_type for n in lowered.graph.node if n.op_type in PLUGIN_OPS}
        if left != set(c.plugin_ops):
            raise UserError(
                f"candidate {c.name} of {model_path.name} holds plugin nodes "
                f"{sorted(left)}, expected {sorted(c.plugin_ops)}"
            )
        figures[c.name] = {"lowered_nodes": rows[0][1]}
    if not kept_plugins.isdisjoint(PLUGIN_OPS) and frozenset() in made:
        figures["plugin-free"]["max_abs_vs_plugin_model"] = _check_numerics(
            model_path, outputs["plugin-free"], image_input(model)
        )
    seconds = round(time.perf_counter() - t0, 1)
    log.info(
        "variants: %d candidate(s) of %s (%s) in %.1f s",
        len(candidates_),
        model_path.name,
        ", ".join(c.name for c in candidates_),
        seconds,
    )
    data = {
        "inputs": inputs,
        "settings": settings,
        "outputs": {n: onnx_hash(p) for n, p in outputs.items()},
        "candidates": figures,
        "seconds": seconds,
    }
    return finish(folder, stage, data, outputs)
