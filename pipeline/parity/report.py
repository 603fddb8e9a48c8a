"""parity.md (a table a reviewer reads in a PR) and parity.png (where the error lives)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.artifacts import atomic_path, write_text_atomic


def _pct(v):
    return "–" if v is None else f"{100 * v:.2f} %"


def write_markdown(dst: Path, record: dict) -> Path:
    st = record["stages"]
    lines = [
        f"# Parity ladder — {record['preset']}",
        "",
        f"{record['images']} images ({record['source']}); reference: Paddle fp32; ONNX "
        f"rungs on {record.get('backend', 'onnxruntime')}.",
        "",
    ]
    labelled = any("acc_top1" in f for f in st.values())
    head = ["stage", "artifact"]
    head += ["top-1", "top-5", "Δtop-1 (pt)"] if labelled else []
    head += [
        "top-1 agree",
        "top-5 overlap",
        "max |Δlogit|",
        "mean |Δlogit|",
        "cosine (mean/min)",
        "status",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    bad_stages = {v.split(":")[0] for v in record["violations"]}
    ref = st.get("paddle", {})
    for name, f in st.items():
        row = [name, f.get("artifact") or "(Paddle dygraph)"]
        if labelled:
            drop = (
                100 * (ref["acc_top1"] - f["acc_top1"])
                if "acc_top1" in f and "acc_top1" in ref
                else None
            )
            row += [
                _pct(f.get("acc_top1")),
                _pct(f.get("acc_top5")),
                "–" if drop is None else f"{drop:+.2f}",
            ]
        if name == "paddle":
            row += ["reference"] + ["–"] * 4
        else:
            row += [
                _pct(f["top1_agreement"]),
                _pct(f["top5_overlap"]),
                f"{f['max_abs']:.3g}",
                f"{f['mean_abs']:.3g}",
                f"{f['cosine_mean']:.6f} / {f['cosine_min']:.6f}",
            ]
        row.append("**FAIL**" if name.split(":")[0] in bad_stages else "ok")
        lines.append("| " + " | ".join(row) + " |")
    for name, why in record.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {why} |")
    lines += [
        "",
        "Thresholds: "
        + ", ".join(
            f"{s}: " + ", ".join(f"{k} {v}" for k, v in c.items())
            for s, c in record["thresholds"].items()
        ),
    ]
    if record["violations"]:
        lines += ["", "## Violations", ""] + [f"- {v}" for v in record["violations"]]
    for name, b in record.get("bisect", {}).items():
        lines += [
            "",
            f"## Bisect: {name}",
            "",
            f"First jump: **{b['first_jump']}** (worst per-token relative error of the "
            "residual stream at each LayerNorm input, in execution order"
            + (f"; reference {b['reference']}" if b.get("reference") else "")
            + ").",
            "",
            *([f"Remedy: {b['remedy']}.", ""] if b.get("remedy") else []),
            "| checkpoint | relative error |",
            "|---|---|",
        ]
        lines += [f"| {c} | {e:.3g} |" for c, e in zip(b["checkpoints"], b["rel_error"])]
    return write_text_atomic(dst, "\n".join(lines) + "\n")


def write_plot(dst: Path, record: dict, errors: dict[str, np.ndarray]) -> Path:
    """Left: per-image max |Δlogit| per stage (log scale); right: checkpoint errors (bisect)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bis = record.get("bisect", {})
    fig, axes = plt.subplots(1, 2 if bis else 1, figsize=(12 if bis else 7, 4.5), squeeze=False)
    ax = axes[0, 0]
    names = [n for n in errors if n != "paddle"]
    if names:
        data = [np.maximum(errors[n], 1e-9) for n in names]
        ax.boxplot(data, showfliers=True, whis=(5, 95))
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(
            [f"{n}\n{record['stages'][n]['top1_agreement']:.1%} agree" for n in names]
        )
        ax.set_yscale("log")
    ax.set_ylabel("per-image max |Δlogit| vs Paddle")
    ax.set_title(f"{record['preset']}: error per stage ({record['images']} images)")
    ax.grid(True, axis="y", alpha=0.3)
    if bis:
        ax = axes[0, 1]
        for name, b in bis.items():
            ax.semilogy(np.maximum(b["rel_error"], 1e-9), marker=".", label=name)
            ax.axvline(
                b["checkpoints"].index(b["first_jump"])
                if b["first_jump"] in b["checkpoints"]
                else 0,
                ls="--",
                alpha=0.4,
            )
        labels = next(iter(bis.values()))["checkpoints"]
        step = max(1, len(labels) // 16)
        ax.set_xticks(range(0, len(labels), step))
        ax.set_xticklabels(labels[::step], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("worst per-token relative error")
        ax.set_title("bisect: where the error enters")
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(dst, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return dst
