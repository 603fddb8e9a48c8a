"""What DeepStream's nvinfer preprocessing costs CaiT, measured on the CPU (docs/serving.md).

    .venv/bin/python scripts/deepstream_drift.py [--crops 16] [--depth 24] [--threads 2]

Runs the project's CPU runtime (ONNX Runtime) on the exact preprocessing and on the nvinfer
emulation (`pipeline/data/nvinfer.py`: one net-scale-factor, point-sampled nearest/bilinear
scaling, stretch / pad / crop geometry) and prints, per variant, top-1 agreement and top-5
overlap with the exact preprocessing, |Δlogit| (max, mean), the input's max |Δ|, and (digits)
top-1 accuracy. Two sets, measured in one run:

1. digits: the trained `cait_digits` fixture on its 360 held-out digits (PNG, 8 → 32 px);
2. real JPEGs: crops of varied aspect ratio (0.6–1.7) of the three photographs that matplotlib
   and scikit-learn ship, re-encoded as JPEG, through `cait_xxs_24` (224 px) with random weights
   and strong LayerScale γ (no trained ImageNet CaiT can be fetched here: agreement on a random
   network is a sensitivity measure, not an accuracy statement).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = [
    "scale-only",
    "stretch/bilinear",
    "stretch/nearest",
    "pad/bilinear",
    "pad/nearest",
    "crop/bilinear",
    "crop/nearest",
]


def photos() -> list[Path]:
    import matplotlib
    import sklearn

    mpl = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    skl = Path(sklearn.__file__).parent / "datasets" / "images"
    return [mpl, skl / "china.jpg", skl / "flower.jpg"]


def write_crops(dst: Path, per_photo: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for src in photos():
        img = Image.open(src).convert("RGB")
        w, h = img.size
        for i in range(per_photo):
            aspect = rng.uniform(0.6, 1.7)  # width / height
            ch = int(rng.uniform(0.45, 1.0) * min(h, w / aspect))
            cw = int(ch * aspect)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            p = dst / f"{src.stem}_{i:02d}.jpg"
            img.crop((x, y, x + cw, y + ch)).save(p, quality=90)
            out.append(p)
    return out


def table(title: str, figures: dict) -> None:
    print(f"\n{title}\n")
    head = "| variant | top-1 agree | top-5 overlap | max abs dlogit | mean abs dlogit | max abs dinput |"
    acc = "exact" in figures
    print(head + (" top-1 acc |" if acc else ""))
    print("|---" * (6 + acc) + "|")
    if acc:
        print(f"| exact (reference) | | | | | |{figures['exact']['acc_top1']:.2%} |")
    for v in VARIANTS:
        f = figures[v]
        row = (
            f"| {v} | {f['top1_agreement']:.2%} | {f['top5_overlap']:.2%} | {f['max_abs']:.3g} |"
            f" {f['mean_abs']:.3g} | {f['input_max_abs']:.3g} |"
        )
        print(row + (f" {f['acc_top1']:.2%} |" if acc else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crops", type=int, default=16, help="JPEG crops per photograph (default 16)")
    p.add_argument("--depth", type=int, default=24, help="cait_xxs_24 depth (default 24)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    args = p.parse_args(argv)

    from pipeline.presets import get_preset
    from pipeline.runners.ort import OrtRunner
    from pipeline.stages.deepstream import preprocessing_drift
    from pipeline.stages.export import export
    from tests.support.digits import write_digits_split
    from tests.support.weights import strong_weights

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        digits = get_preset("cait_digits")
        weights = ROOT / "tests" / "fixtures" / "cait_digits.pdparams"
        onnx = export(digits, tmp / "digits", weights=str(weights)).path
        samples = write_digits_split(tmp / "heldout", "heldout")
        fig = preprocessing_drift(
            OrtRunner(onnx, threads=args.threads),
            [s.path for s in samples],
            digits.img_size,
            VARIANTS,
            labels=[s.label for s in samples],
        )
        table(f"digits: cait_digits (trained), {len(samples)} held-out PNGs, 8 -> 32 px", fig)

        (tmp / "jpegs").mkdir()
        jpegs = write_crops(tmp / "jpegs", args.crops)
        xxs = get_preset("cait_xxs_24", depth=args.depth)
        w = strong_weights(xxs, tmp / "strong.pdparams")
        onnx = export(xxs, tmp / "xxs", weights=str(w)).path
        fig = preprocessing_drift(
            OrtRunner(onnx, threads=args.threads), jpegs, xxs.img_size, VARIANTS
        )
        table(
            f"real JPEGs: {len(jpegs)} crops of 3 photographs, cait_xxs_24 depth {args.depth} "
            "(random weights, strong gamma), 224 px",
            fig,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
