"""`models`: list the presets with exact parameter counts and FLOPs."""

from __future__ import annotations

import json

from pipeline.presets import PRESETS


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--all", action="store_true", help="include test fixtures (e.g. the digits model)"
    )


def run(args) -> int:
    rows = [p.as_dict() for p in PRESETS.values() if p.zoo or args.all]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = [
        ("name", "{:<17}"),
        ("img_size", "{:>4}"),
        ("patch_size", "{:>5}"),
        ("embed_dim", "{:>5}"),
        ("depth", "{:>5}"),
        ("num_heads", "{:>5}"),
        ("init_scale", "{:>7.0e}"),
        ("params", "{:>13,}"),
        ("gflops", "{:>8.2f}"),
    ]
    heads = ["name", "img", "patch", "dim", "depth", "heads", "init", "params", "GFLOPs"]
    print(
        " ".join(
            f"{h:<17}" if i == 0 else f"{h:>{len(f.format(rows[0][k]))}}"
            for i, (h, (k, f)) in enumerate(zip(heads, cols))
        )
    )
    for r in rows:
        print(" ".join(f.format(r[k]) for k, f in cols))
    return 0
