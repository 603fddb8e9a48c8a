#!/usr/bin/env python
"""Train the `cait_digits` test fixture on scikit-learn's handwritten digits, deterministically.

Why: no ImageNet-trained CaiT weights exist here, and FP16/INT8 accuracy drops measured on a random
model are noise. This gives a small CaiT with real, confident predictions on a real held-out split.

    .venv/bin/python scripts/train_digits.py            # writes tests/fixtures/cait_digits.*

Determinism: fixed seeds for init, shuffling and augmentation, and one CPU thread by default
(multi-threaded reductions may sum in a different order from run to run). The split is the fixed
stratified 80/20 of `tests.support.digits` (seed 0); the held-out 20 % is never trained on.
Cost: 20 epochs of 1437 images, ~35-70 s each on 2 shared CPU cores (Paddle dygraph), 98.9 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-steps", type=int, default=40)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--shift", type=int, default=2, help="max random translation in pixels (0: off)")
    p.add_argument(
        "--pos-init",
        choices=("sincos", "random"),
        default="sincos",
        help="start the position embedding from 2-D sin-cos (learns in fewer epochs)",
    )
    p.add_argument("--eval-every", type=int, default=4, help="held-out accuracy every N epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads; reproducible for a fixed count (dynamic threading is off)",
    )
    p.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="use only the first N training images (quick determinism checks)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=0.95,
        help="fail (exit 1, nothing written) below this held-out top-1",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before paddle is imported: its thread pools read these once.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    # MKL may otherwise use fewer threads when the machine is busy, changing summation order.
    os.environ["MKL_DYNAMIC"] = "FALSE"
    os.environ["OMP_DYNAMIC"] = "FALSE"
    # Paddle's bundled MKL (mklml) takes a slow generic path on AMD CPUs; this pins its AVX2
    # kernels on every x86 CPU: 3-5x faster matmuls here, and the same code path everywhere.
    os.environ["MKL_DEBUG_CPU_TYPE"] = "5"
    os.environ.setdefault("GLOG_minloglevel", "2")

    import numpy as np
    import paddle
    import paddle.nn.functional as F
    from tqdm import tqdm

    from pipeline.artifacts import atomic_path, sha256_file, write_json_atomic
    from pipeline.models import build_model
    from pipeline.presets import get_preset
    from tests.support.digits import HELDOUT_FRACTION, SPLIT_SEED, load_digits_split

    paddle.set_device("cpu")
    preset = get_preset("cait_digits")
    x_train, y_train = load_digits_split("train")
    x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    x_held, y_held = load_digits_split("heldout")

    model = build_model(preset, seed=args.seed)
    if args.pos_init == "sincos":
        side = preset.img_size // preset.patch_size
        model.pos_embed.set_value(_sincos_2d(side, preset.embed_dim)[None])
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = min(args.warmup_steps, total // 2)
    cosine = paddle.optimizer.lr.CosineAnnealingDecay(args.lr, T_max=max(1, total - warmup))
    sched = (
        paddle.optimizer.lr.LinearWarmup(
            cosine, warmup_steps=warmup, start_lr=args.lr * 0.01, end_lr=args.lr
        )
        if warmup
        else cosine
    )
    # Only matrices decay; biases, norms, LayerScale γ and the tokens do not (the CaiT recipe).
    # Paddle passes the framework name (`linear_3.b_0`), not the structured one: select by tensor.
    decayed = {
        p.name
        for n, p in model.named_parameters()
        if p.ndim >= 2 and n not in ("cls_token", "pos_embed")
    }
    opt = paddle.optimizer.AdamW(
        learning_rate=sched,
        parameters=model.parameters(),
        weight_decay=args.weight_decay,
        apply_decay_param_fun=lambda name: name in decayed,
    )
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        for step in bar:
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            xb = _shift(x_train[idx], args.shift, rng)
            logits = model(paddle.to_tensor(xb))
            loss = F.cross_entropy(
                logits, paddle.to_tensor(y_train[idx]), label_smoothing=args.label_smoothing
            )
            loss.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        line = f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}"
        if args.eval_every and (epoch + 1) % args.eval_every == 0:
            line += f"  held-out top-1 {_accuracy(model, x_held, y_held):.4f}"
        print(f"{line}  {time.perf_counter() - start:.0f}s", flush=True)
    wall = time.perf_counter() - start

    acc = _accuracy(model, x_held, y_held)
    if acc < args.min_accuracy:
        print(f"held-out top-1 {acc:.4f} < {args.min_accuracy}; nothing written", file=sys.stderr)
        return 1
    weights = args.out / f"{preset.name}.pdparams"
    with atomic_path(weights, suffix=".pdparams") as tmp:
        paddle.save(model.state_dict(), str(tmp))
    record = {
        "preset": preset.name,
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "heldout_top1": round(acc, 6),
        "heldout_images": int(len(y_held)),
        "train_images": int(len(y_train)),
        "split": {
            "dataset": "sklearn.datasets.load_digits",
            "heldout_fraction": HELDOUT_FRACTION,
            "stratified": True,
            "seed": SPLIT_SEED,
        },
        "epochs": args.epochs,
        "hyperparameters": {
            k: v for k, v in vars(args).items() if k not in ("out", "epochs", "min_accuracy")
        },
        "train_wall_s": round(wall, 1),
        "versions": {"paddlepaddle": paddle.__version__, "numpy": np.__version__},
    }
    write_json_atomic(args.out / f"{preset.name}.json", record)
    print(
        f"held-out top-1 {acc:.4f}; wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) in "
        f"{wall:.0f}s"
    )
    return 0


def _sincos_2d(side: int, dim: int):
    """MAE-style 2-D sin-cos table (side², dim): half the channels encode rows, half columns."""
    import numpy as np

    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    parts = []
    for pos in (rows.ravel(), cols.ravel()):
        angle = pos[:, None] * omega[None]
        parts += [np.sin(angle), np.cos(angle)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def _shift(x, max_shift, rng):
    """Random translation, edges replicated (the digits' background), one offset per image."""
    if max_shift <= 0:
        return x
    import numpy as np

    s = x.shape[-1]
    m = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), mode="edge")
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(rng.integers(0, 2 * max_shift + 1, (len(x), 2))):
        out[i] = padded[i, :, dy : dy + s, dx : dx + s]
    return out


def _accuracy(model, x, y, batch: int = 256) -> float:
    import numpy as np
    import paddle

    model.eval()
    with paddle.no_grad():
        pred = np.concatenate(
            [
                model(paddle.to_tensor(x[i : i + batch])).numpy().argmax(1)
                for i in range(0, len(x), batch)
            ]
        )
    return float((pred == y).mean())


if __name__ == "__main__":
    sys.exit(main())
