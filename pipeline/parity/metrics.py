"""Figures of the ladder: accuracy, agreement with Paddle, logit error; thresholds as data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.numerics import compare

# Thresholds are data (a JSON file can replace any of them): stage → {check: limit}.
#   min_top1_agreement  top-1 agreement with Paddle, fraction
#   max_top1_drop_pt    accuracy drop vs Paddle in percentage points (needs labels)
#   min_cosine          mean cosine similarity of logits with Paddle
#   max_abs_logit       max |Δlogit| with Paddle
DEFAULT_THRESHOLDS = {
    "fp16": {"min_top1_agreement": 0.99},
    "int8": {"max_top1_drop_pt": 1.0},
    "fp8": {"max_top1_drop_pt": 1.0},
}


def load_thresholds(thresholds: dict | str | Path | None) -> dict:
    out = {k: dict(v) for k, v in DEFAULT_THRESHOLDS.items()}
    if thresholds is None:
        return out
    if isinstance(thresholds, (str, Path)):
        try:
            thresholds = json.loads(Path(thresholds).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read thresholds {thresholds}: {e}") from None
    for stage, checks in thresholds.items():
        if not isinstance(checks, dict):
            raise UserError(f"thresholds for '{stage}' must be an object of check → limit")
        unknown = set(checks) - {
            "min_top1_agreement",
            "max_top1_drop_pt",
            "min_cosine",
            "max_abs_logit",
        }
        if unknown:
            raise UserError(f"unknown threshold(s) {sorted(unknown)} for '{stage}'")
        out.setdefault(stage, {}).update(checks)
    return out


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    """`{'acc_top1': …, 'acc_top5': …}` like the reference evaluation prints."""
    return {
        "acc_top1": float(topk_hits(logits, labels, 1).mean()),
        "acc_top5": float(topk_hits(logits, labels, 5).mean()),
    }


def stage_figures(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None) -> dict:
    fig = {"images": int(len(ref)), **compare(ref, out)}
    if labels is not None:
        fig.update(accuracy(out, labels))
    return fig


def violations(stage: str, fig: dict, ref_fig: dict, thresholds: dict) -> list[str]:
    checks = thresholds.get(stage.split(":")[0], {})
    bad = []
    if "min_top1_agreement" in checks and fig["top1_agreement"] < checks["min_top1_agreement"]:
        bad.append(
            f"{stage}: top-1 agreement {fig['top1_agreement']:.2%} < "
            f"{checks['min_top1_agreement']:.2%}"
        )
    if "max_top1_drop_pt" in checks and "acc_top1" in fig and "acc_top1" in ref_fig:
        drop = 100 * (ref_fig["acc_top1"] - fig["acc_top1"])
        fig["top1_drop_pt"] = drop
        if drop > checks["max_top1_drop_pt"]:
            bad.append(
                f"{stage}: top-1 accuracy drop {drop:.2f} pt > {checks['max_top1_drop_pt']} pt"
            )
    if "min_cosine" in checks and fig["cosine_mean"] < checks["min_cosine"]:
        bad.append(f"{stage}: cosine {fig['cosine_mean']:.5f} < {checks['min_cosine']}")
    if "max_abs_logit" in checks and fig["max_abs"] > checks["max_abs_logit"]:
        bad.append(f"{stage}: max |Δlogit| {fig['max_abs']:.3g} > {checks['max_abs_logit']}")
    return bad


def checkpoint_labels(depth: int, n: int) -> list[str]:
    """Names of the LayerNorm-input checkpoints: what last changed the residual stream there."""
    out = []
    for k in range(n):
        if k == 0:
            out.append("patch embed")
            continue
        b, half = divmod(k - 1, 2)
        part = "attn" if half == 0 else "mlp"
        out.append(f"block {b} {part}" if b < depth else f"class block {b - depth} {part}")
    return out


def first_jump(rel: list[float], fraction: float = 0.25) -> int | None:
    """Index of the first checkpoint whose error increase is ≥ `fraction` of the largest one."""
    if not rel:
        return None
    inc = np.diff(np.concatenate([[0.0], np.asarray(rel, np.float64)]))
    top = inc.max()
    if top <= 0:
        return None
    return int(np.argmax(inc >= fraction * top))


def checkpoint_errors(ref_taps, taps) -> list[float]:
    """Worst per-token relative error of each checkpoint of `taps` against `ref_taps` (in order).

    Per token, because a class-attention checkpoint concatenates one changed class token with the
    untouched patches, which a global norm would dilute."""
    rel = []
    for a, b in zip(ref_taps, taps):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64).reshape(a.shape)
        err = np.linalg.norm(b - a, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1), 1e-30)
        rel.append(float(err.max()))
    return rel


def remedy(checkpoint: str | None) -> str | None:
    """What to try when the error first jumps at `checkpoint` (a `checkpoint_labels` name)."""
    if checkpoint is None:
        return None
    if checkpoint == "patch embed":
        return "keep the patch embedding (Conv) fp32 in the strongly typed model"
    *where, part = checkpoint.split()
    block = " ".join(where)
    if part == "mlp":
        return f"keep {block}'s MLP (fc1, GELU, fc2) fp32 in the strongly typed model"
    op = "class attention" if where[0] == "class" else "talking-heads attention"
    return (
        f"keep {block}'s {op} fp32 in the strongly typed model, or build its {op} as plain "
        "ONNX (--attention onnx) instead of the plugin"
    )


def bisect_report(ref_taps, taps, depth: int) -> dict:
    """Checkpoint names, their errors, the first jump and its remedy (the parity report's rows)."""
    if len(ref_taps) != len(taps):
        raise UserError(
            f"bisect: {len(taps)} checkpoints against the reference's {len(ref_taps)}; "
            "cannot align them"
        )
    rel = checkpoint_errors(ref_taps, taps)
    names = checkpoint_labels(depth, len(rel))
    k = first_jump(rel)
    jump = names[k] if k is not None else None
    return {"checkpoints": names, "rel_error": rel, "first_jump": jump, "remedy": remedy(jump)}
