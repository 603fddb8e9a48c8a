"""Fuse stage: `model.onnx` → `model.fused.onnx` (CaiT attention fused, scale and γ folded).

    fuse(src, dst, *, attention="plugin", verify=True, report=None, expect_blocks=None,
         tol=PARITY_TOL, batches=PARITY_BATCHES, seed=0, force=False) -> StageRecord

- `attention="plugin"`: `CaitTalkingHeadsAttention` / `CaitClassAttention` plugin nodes (the
  fused-op contract, `pipeline/contract`), no local functions in `dst`. `attention="onnx"`: the
  plugin-free fast path (the same reference decomposition, inlined). `"th=plugin,ca=onnx"` or a
  mapping {op: mode} chooses per fused op; `auto` emits plugin nodes where the plugin can run
  them (the engine stage then measures which to keep, `stages/variants.py`). An explicit plugin
  node past the kernels' limits (more than 16 heads) is refused with the fix (`--attention
  onnx`), before anything is written; under `auto` it becomes plain ONNX.
- `expect_blocks`: the preset's depth L. When None, it is read from the export manifest beside
  `src` (stages.export.settings.preset.depth); failing that, the self-attention blocks are counted
  structurally (and the log says so). Fusing must yield exactly L talking-heads and 2
  class-attention nodes, or a UserError names what was found and what refused.
- `verify`: ONNX Runtime, `src` against the verification copy (fused nodes + reference local
  functions), on `sample_images` at `batches`: max |Δlogit| ≤ `tol` and, per fused node, the
  attention output against the same tensor of `src` (γ = 1e-5 would hide a miswired attention
  below any logit tolerance; the attention outputs do not).
- `report`: path of the fusion report JSON (a `.md` twin is written beside it).
The record (manifest key `fuse`, or `fuse_onnx` for the plugin-free model) holds the counts,
parity, bytes and folded γ list beside its inputs, settings and outputs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import (
    StageRecord,
    finish,
    onnx_hash,
    read_manifest,
    reuse,
    save_onnx,
    write_json_atomic,
    write_text_atomic,
)
from pipeline.contract import (
    CLASS_ATTENTION,
    CLASS_BLOCKS,
    PLUGIN_OPS,
    TALKING_HEADS,
    limit_violation,
)
from pipeline.contract.reference import attach_reference_functions
from pipeline.errors import UserError
from pipeline.numerics import PARITY_BATCHES, PARITY_TOL, compare, sample_images
from pipeline.onnx_io import image_input, load_onnx, ort_session
from pipeline.passes import PassContext, lower_to_onnx, passes_for, run_passes
from pipeline.passes.report import graph_figures, markdown
from pipeline.stages.variants import MODES, describe, parse_attention

log = logging.getLogger(__name__)

ATTENTION_TOL = 1e-4  # max |Δ| of a fused op's output relative to the output's max |value|


# ---- reading and writing models --------------------------------------------------------------


def _uses_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    m = onnx.load(str(path), load_external_data=False)
    return any(uses_external_data(t) for t in m.graph.initializer)


# ---- expectations -----------------------------------------------------------------------------


def expected_blocks(src: Path, expect_blocks: int | None, model) -> tuple[int, str]:
    if expect_blocks is not None:
        return int(expect_blocks), "given"
    preset = (
        read_manifest(src.parent)
        .get("stages", {})
        .get("export", {})
        .get("settings", {})
        .get("preset", {})
    )
    if preset.get("depth"):
        return int(preset["depth"]), f"manifest ({preset.get('name')})"
    n = count_self_attention(model)
    log.info(
        "fuse: no preset known for %s: counted %d self-attention blocks structurally "
        "(softmax over an N×N score map); pass --expect-blocks L to check against a preset",
        src,
        n,
    )
    return n, "structural count"


def count_self_attention(model) -> int:
    """Softmaxes over square (…, N, N) score maps with N > 1: one per talking-heads block."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {
        vi.name: [
            d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in vi.type.tensor_type.shape.dim
        ]
        for vi in inferred.graph.value_info
    }
    n = 0
    for node in inferred.graph.node:
        dims = shapes.get(node.output[0]) if node.op_type == "Softmax" else None
        if dims and len(dims) == 4 and dims[-1] == dims[-2] and dims[-1] not in (0, 1, ""):
            n += 1
    return n


# ---- verification -----------------------------------------------------------------------------


def verify_parity(
    src_model,
    fused_model,
    *,
    probes=(),
    batches=(1, 3),
    seed: int = 0,
    tol: float = PARITY_TOL,
    attention_tol: float = ATTENTION_TOL,
) -> dict:
    """ORT: unfused `src_model` vs `fused_model` (+ reference functions) on real-looking images.

    `probes`: tensors present in both graphs (the fused ops' outputs) compared as well.
    """
    probe = list(probes)
    src_names = {o for n in src_model.graph.node for o in n.output}
    probe = [p for p in probe if p in src_names]
    ref = ort_session(src_model, extra_outputs=probe)
    out = ort_session(attach_reference_functions(fused_model), extra_outputs=probe)
    image = image_input(src_model)
    name, chans, size = image.name, image.channels, image.size
    if image.batch:  # a static-batch export runs at its own batch only
        batches = (image.batch,)
    logits = src_model.graph.output[0].name
    figures, worst_att = {}, 0.0
    for b in batches:
        x = sample_images(b, size, seed=seed + b, channels=chans)
        r = dict(zip([o.name for o in ref.get_outputs()], ref.run(None, {name: x})))
        o = dict(zip([o.name for o in out.get_outputs()], out.run(None, {name: x})))
        figures[f"batch{b}"] = compare(
            r[logits].reshape(b, -1), o[fused_model.graph.output[0].name].reshape(b, -1)
        )
        for p in probe:
            scale = float(np.abs(r[p]).max()) or 1.0
            worst_att = max(worst_att, float(np.abs(r[p] - o[p]).max()) / scale)
    worst = max(f["max_abs"] for f in figures.values())
    result = {
        "max_abs": worst,
        "tolerance": tol,
        "batches": list(batches),
        "inputs": "numerics.sample_images",
        "attention_outputs_checked": len(probe),
        "attention_max_rel": worst_att,
        "attention_tolerance": attention_tol,
        "per_batch": figures,
    }
    if not worst <= tol:
        raise UserError(
            f"fuse parity failed: max |Δlogit| {worst:.3g} > {tol:g} between the "
            "unfused and the fused model (ONNX Runtime, fp32)"
        )
    if not worst_att <= attention_tol:
        raise UserError(
            f"fuse parity failed: a fused attention output differs by "
            f"{worst_att:.3g} (relative) > {attention_tol:g} from the unfused graph"
        )
    return result


# ---- the stage ---------------------------------------------------------------------------------


def _table(rows) -> str:
    lines = [f"{'pass':<24}{'rewrites':>9}{'seconds':>9}"]
    lines += [f"{name:<24}{count:>9}{sec:>9.2f}" for name, count, sec in rows]
    return "\n".join(lines)


def attention_choice(attention) -> dict[str, str]:
    """{op: "plugin" | "onnx" | "auto"} from a mode, `th=…,ca=…` or a mapping."""
    if isinstance(attention, str):
        return parse_attention(attention)
    unknown = set(attention) - PLUGIN_OPS
    bad = set(attention.values()) - set(MODES)
    if unknown or bad:
        raise UserError(f"--attention: unknown op(s) {sorted(unknown)} or mode(s) {sorted(bad)}")
    return {op: attention.get(op, "auto") for op in sorted(PLUGIN_OPS)}


def stage_name(lower: frozenset) -> str:
    """Manifest key: `fuse` (plugin nodes), `fuse_onnx` (plugin-free), `fuse_onnx[<ops>]`."""
    if not lower:
        return "fuse"
    return "fuse_onnx" if lower == PLUGIN_OPS else "fuse_onnx[" + ",".join(sorted(lower)) + "]"


def over_limit(model) -> dict[str, str]:
    """{op: why} for plugin nodes this plugin build cannot run (e.g. more than 16 heads)."""
    out = {}
    for node in model.graph.node:
        if node.op_type in PLUGIN_OPS:
            heads = next((a.i for a in node.attribute if a.name == "num_heads"), 0)
            why = limit_violation(node.op_type, heads)
            if why:
                out.setdefault(node.op_type, why)
    return out


def _within_limits(fused, choice, lower, rows):
    """Refuse explicit plugin ops past the kernels' limits (naming the way out); lower `auto`
    ones to plain ONNX. Returns (model, ops now plain ONNX)."""
    limited = over_limit(fused)
    for op, why in limited.items():
        if choice[op] == "plugin":
            raise UserError(
                f"{why}; fuse with --attention onnx to run it as plain ONNX (no plugin needed)"
            )
    auto = frozenset(limited)
    if not auto:
        return fused, lower
    log.info("fuse: %s as plain ONNX: %s", ", ".join(sorted(auto)), "; ".join(limited.values()))
    fused, more = run_passes(fused, PassContext(lower=auto), passes=[lower_to_onnx])
    rows += more
    return fused, lower | auto


def fuse(
    src,
    dst,
    *,
    attention="plugin",
    verify: bool = True,
    report=None,
    expect_blocks: int | None = None,
    tol: float = PARITY_TOL,
    batches=PARITY_BATCHES,
    seed: int = 0,
    force: bool = False,
) -> StageRecord:
    """Stage: fuse `src` into `dst` (see the module docstring)."""
    choice = attention_choice(attention)
    lower = frozenset(op for op, mode in choice.items() if mode == "onnx")
    src, dst = Path(src), Path(dst)
    folder, stage = dst.parent, stage_name(lower)
    model = load_onnx(src)
    settings = {
        "attention": describe(choice),
        "verify": verify,
        "expect_blocks": expect_blocks,
        "tolerance": tol,
        "batches": list(batches),
        "seed": seed,
        "passes": [p.NAME for p in passes_for(lower)],
    }
    inputs = {"model": onnx_hash(src)}
    fresh = reuse(folder, stage, inputs, settings, {dst.name: dst}, force)
    if fresh:
        return fresh

    t0 = time.perf_counter()
    blocks, source = expected_blocks(src, expect_blocks, model)
    ctx = PassContext(lower=lower, keep_snapshots=("canonicalize",))
    fused, rows = run_passes(model, ctx)
    print(_table(rows))
    _check_counts(ctx, blocks, source)
    fused, lower = _within_limits(fused, choice, lower, rows)
    figures = {
        "talking_heads": ctx.fused.get(TALKING_HEADS, 0),
        "class_attention": ctx.fused.get(CLASS_ATTENTION, 0),
        "expected_blocks": blocks,
        "expected_from": source,
        "lowered": sorted(lower),
        "passes": [{"pass": n, "rewrites": c, "seconds": s} for n, c, s in rows],
    }
    if verify:
        figures["verify"] = v = verify_parity(
            model, fused, probes=ctx.fused_outputs, batches=batches, seed=seed, tol=tol
        )
        print(
            f"parity: max |Δlogit| {v['max_abs']:.3g} ≤ {tol:g} at batch "
            f"{'/'.join(map(str, v['batches']))}; fused attention outputs: max relative "
            f"{v['attention_max_rel']:.3g} over {v['attention_outputs_checked']} nodes"
        )
    save_onnx(fused, dst, external=_uses_external_data(src))
    figures.update(_report(src, dst, model, fused, ctx, figures, report))
    seconds = round(time.perf_counter() - t0, 1)
    log.info(
        "fuse: %s — %d talking-heads, %d class-attention nodes (%s) in %.1f s",
        dst,
        figures["talking_heads"],
        figures["class_attention"],
        settings["attention"],
        seconds,
    )
    return finish(
        folder,
        stage,
        {
            "inputs": inputs,
            "settings": settings,
            "outputs": {dst.name: onnx_hash(dst)},
            **figures,
            "seconds": seconds,
        },
        {dst.name: dst},
    )


def _check_counts(ctx, blocks: int, source: str) -> None:
    found_th = ctx.fused.get(TALKING_HEADS, 0)
    found_ca = ctx.fused.get(CLASS_ATTENTION, 0)
    if found_th == blocks and found_ca == CLASS_BLOCKS and blocks > 0:
        return
    refused = "; ".join(f"{p}: {r}" for p, r in ctx.refused[:3])
    raise UserError(
        f"found {found_th} talking-heads blocks, expected {blocks} ({source}), and "
        f"{found_ca} class-attention blocks, expected {CLASS_BLOCKS}"
        + (f"; refused: {refused}" if refused else "")
        + ("" if blocks else "; is this a CaiT model?")
    )


def _report(src, dst, model, fused, ctx, figures, report) -> dict:
    """The fusion report (JSON + markdown when `report` is given) and its manifest figures."""
    heads = ctx.num_heads
    rep = {
        "source": str(src),
        "output": str(dst),
        "lowered": figures["lowered"],
        "passes": figures["passes"],
        "fused": {
            TALKING_HEADS: figures["talking_heads"],
            CLASS_ATTENTION: figures["class_attention"],
        },
        "before": graph_figures(ctx.snapshots["canonicalize"], heads),
        "after": graph_figures(fused, heads),
        "folded_gamma": ctx.folded_gamma,
        "refused": [{"pass": p, "reason": r} for p, r in ctx.refused],
        "verify": figures.get("verify"),
        "input_nodes": len(model.graph.node),
    }
    out = {
        "bytes_per_image_fp16": {
            k: rep[k]["activation_bytes_per_image_fp16"] for k in ("before", "after")
        },
        "score_tensors": {k: rep[k]["score_tensors"] for k in ("before", "after")},
        "nodes": {
            "input": rep["input_nodes"],
            "before": rep["before"]["nodes"],
            "after": rep["after"]["nodes"],
        },
        "folded_gamma": len(ctx.folded_gamma),
        "folded_gamma_fp16_flush_risk": sum(g["fp16_flush_risk"] for g in ctx.folded_gamma),
    }
    if report:
        report = Path(report)
        write_json_atomic(report, rep)
        write_text_atomic(report.with_suffix(".md"), markdown(rep))
        out["report"] = str(report)
    return out
