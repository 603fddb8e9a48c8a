"""Explain stage: class-attention maps of images, from the deployed ONNX model (and Paddle).

For each image, the attention of the class token over the patches in each head of the last
class-attention layer (`runners.attention`), written as
    <out>/<image stem>.attention.npy   float32 (H, N + 1): raw maps, class token first, rows sum to 1
    <out>/<image stem>.attention.png   the image, then one overlay per head (upsampled patch grid)
and recorded in `<out>/manifest.json` under `explain`. With `reference=True` the Paddle model
computes the same maps and the record holds the largest difference (fp32: ≤ 1e-4 expected).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import StageRecord, atomic_path, finish, onnx_hash, sha256_file
from pipeline.data.preprocess import load_image, preprocess, resize_short_crop
from pipeline.errors import UserError
from pipeline.runners.attention import OnnxAttention, PaddleAttention

log = logging.getLogger(__name__)

SUM_TOLERANCE = 1e-3  # a softmax row in fp16 sums to 1 within a few ulps of 1


def output_names(images: list[Path]) -> list[str]:
    """One file stem per image: its own, or `<index>_<stem>` where two images share a stem."""
    stems = [p.stem for p in images]
    return [s if stems.count(s) == 1 else f"{i}_{s}" for i, s in enumerate(stems)]


def explain(
    images,
    out_dir,
    *,
    onnx_path,
    preset,
    weights=None,
    reference: bool = True,
    batch_size: int = 8,
) -> StageRecord:
    """See the module docstring. Returns the `explain` record (maps' agreement and sums)."""
    t0 = time.perf_counter()
    images, out_dir = [Path(p) for p in images], Path(out_dir)
    onnx_path = Path(onnx_path)
    runner = OnnxAttention(onnx_path)
    size = runner.input_size
    x = np.stack([preprocess(load_image(p), size) for p in images])
    maps = np.concatenate([runner.run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    sums = np.abs(maps.astype(np.float64).sum(-1) - 1).max()
    if sums > SUM_TOLERANCE:
        raise UserError(
            f"{onnx_path.name}: a head's attention sums to 1 ± {sums:.2e}, not a softmax row; "
            "the last Softmax is not the class attention's"
        )
    record = {
        "inputs": {onnx_path.name: onnx_hash(onnx_path)},
        "onnx": str(onnx_path),
        "heads": int(maps.shape[1]),
        "tokens": int(maps.shape[2]),
        "max_sum_error": float(sums),
    }
    if reference:
        ref = PaddleAttention(preset, weights).run(x)
        record["paddle_max_abs"] = float(np.abs(ref - maps).max())
        log.info("explain: maps agree with Paddle within %.2e", record["paddle_max_abs"])
    outputs = {}
    grid = int(round((maps.shape[2] - 1) ** 0.5))
    for path, name, m in zip(images, output_names(images), maps):
        npy, png = out_dir / f"{name}.attention.npy", out_dir / f"{name}.attention.png"
        with atomic_path(npy, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, m.astype(np.float32))  # a file object: np.save would add ".npy" to a name
        shown = np.asarray(resize_short_crop(load_image(path), size))
        render(png, shown, m, grid, title=f"{path.name}: last class attention, per head")
        outputs[npy.name], outputs[png.name] = npy, png
    record["outputs"] = {k: sha256_file(v) for k, v in outputs.items()}
    record["images"] = [str(p) for p in images]
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return finish(out_dir, "explain", record, outputs)


def upsample(head_map: np.ndarray, grid: int, size: int) -> np.ndarray:
    """Patch weights (grid·grid, row-major like the patch tokens) → (size, size), bilinear."""
    from PIL import Image

    square = head_map.reshape(grid, grid).astype(np.float32)
    return np.asarray(Image.fromarray(square, mode="F").resize((size, size), Image.BILINEAR))


def render(dst: Path, image: np.ndarray, maps: np.ndarray, grid: int, title: str) -> Path:
    """The image, then each head's patch attention (class token left out) over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads, size = maps.shape[0], image.shape[0]
    cols = min(heads + 1, 5)
    rows = -(-(heads + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("image", fontsize=8)
    for h in range(heads):
        ax = axes.ravel()[h + 1]
        up = upsample(maps[h, 1:], grid, size)
        ax.imshow(image)
        ax.imshow(up, cmap="inferno", alpha=0.6, vmin=0, vmax=max(float(up.max()), 1e-12))
        ax.set_title(f"head {h} (cls {maps[h, 0]:.0%})", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(dst, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return dst
