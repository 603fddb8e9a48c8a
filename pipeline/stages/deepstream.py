"""DeepStream stage: an engine (or its ONNX) → an `nvinfer` config, labels, and the measured
cost of nvinfer's preprocessing (docs/serving.md).

    deepstream_config(onnx_path, dest, *, plugin_path=PLUGIN_LIB, geometry="stretch",
                      scaling_filter="bilinear", data=None, images=64) -> StageRecord
    preprocessing_drift(runner, paths, size, variants) -> {variant: figures}

With `data` (a folder of images), the ONNX runs on the CPU (ONNX Runtime) with the exact
preprocessing and with the nvinfer emulation (`pipeline.data.nvinfer`) of the configured
geometry and filter; top-1 agreement, |Δlogit| and the input error go into `drift.json` and as
comments into the config. Figures are against the exact preprocessing, not against labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.artifacts import finish, onnx_hash, write_json_atomic, write_text_atomic
from pipeline.data import ImageFolderDataset, class_balanced_sample, load_image, preprocess
from pipeline.data.nvinfer import nvinfer_preprocess, single_scale_only
from pipeline.errors import UserError
from pipeline.numerics import compare
from pipeline.runners import open_runner
from pipeline.serving import deepstream as D
from pipeline.stages.serving import deployable
from pipeline.trt.script import PLUGIN_LIB

CONFIG, LABELS, DRIFT = "config_infer_primary.txt", "labels.txt", "drift.json"
SCALE_ONLY = "scale-only"  # the reference resize and crop, nvinfer's single scale
_PRECISION = {"float16": "fp16"}


def variant_name(geometry: str, scaling_filter: str) -> str:
    return f"{geometry}/{scaling_filter}"


def _inputs(img, size: int, variant: str) -> np.ndarray:
    if variant == SCALE_ONLY:
        return single_scale_only(img, size)
    geometry, filt = variant.split("/")
    return nvinfer_preprocess(img, size, geometry, filt)


def preprocessing_drift(
    runner, paths, size: int, variants, labels=None, batch_size: int = 16
) -> dict:
    """{variant: figures} of `runner` on nvinfer-style inputs vs the exact preprocessing:
    top-1 agreement, top-5 overlap, |Δlogit| (max, mean), cosine, the input's |Δ|, and with
    `labels` the top-1 accuracy of each (`exact` included)."""
    images = [load_image(p) for p in paths]
    if not images:
        raise UserError("no image to measure the preprocessing drift on")

    def logits(x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [runner.run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    exact = np.stack([preprocess(im, size) for im in images])
    ref = logits(exact)
    y = None if labels is None else np.asarray(labels)
    out = {"exact": {"acc_top1": float(np.mean(ref.argmax(1) == y))}} if y is not None else {}
    for v in variants:
        x = np.stack([_inputs(im, size, v) for im in images])
        z = logits(x)
        out[v] = {
            **compare(ref, z),
            "input_max_abs": float(np.abs(x - exact).max()),
            "input_mean_abs": float(np.abs(x - exact).mean()),
        }
        if y is not None:
            out[v]["acc_top1"] = float(np.mean(z.argmax(1) == y))
    return out


def deepstream_config(
    onnx_path,
    dest,
    *,
    plugin_path: str = PLUGIN_LIB,
    geometry: str = "stretch",
    scaling_filter: str = "bilinear",
    threshold: float = 0.0,
    data=None,
    images: int = 64,
):
    """See the module doc. Returns the StageRecord (key `deepstream` in `dest/manifest.json`)."""
    d = deployable(onnx_path)
    dest = Path(dest)
    rel = lambda p: os.path.relpath(Path(p).resolve(), dest.resolve())
    model = D.NvinferModel(
        engine=rel(d.engine),
        onnx=rel(d.onnx),
        precision=_precision(d.onnx),
        input_name=d.input.name,
        input_dims=d.input.dims,
        output_name=d.output.name,
        batch_size=d.batch[2],
        plugin_path=plugin_path if d.needs_plugins else None,
        geometry=geometry,
        scaling_filter=scaling_filter,
        threshold=threshold,
    )
    variant = variant_name(geometry, scaling_filter)
    drift = None
    if data is not None:
        ds = ImageFolderDataset.from_dir(data)
        picks = (
            class_balanced_sample(ds.samples, min(images, len(ds)), seed=0)
            if ds.labelled
            else ds.samples[:images]
        )
        figures = preprocessing_drift(
            open_runner("onnx", d.onnx),
            [s.path for s in picks],
            d.input.dims[-1],
            [SCALE_ONLY, variant],
            labels=[s.label for s in picks] if ds.labelled else None,
        )
        drift = {"images": len(picks), "data": str(ds.root), "variants": figures}
    notes = _notes(variant, drift)
    write_text_atomic(dest / LABELS, D.labels_text(d.labels))
    write_text_atomic(dest / CONFIG, D.config_text(model, LABELS, notes))
    outputs = {CONFIG: dest / CONFIG, LABELS: dest / LABELS}
    if drift is not None:
        write_json_atomic(dest / DRIFT, drift)
        outputs[DRIFT] = dest / DRIFT
    data_rec = {
        "inputs": {"onnx": onnx_hash(d.onnx)},
        "settings": {
            "plugin_path": plugin_path,
            "geometry": geometry,
            "scaling_filter": scaling_filter,
            "threshold": threshold,
        },
        "engine": model.engine,
        "batch_size": model.batch_size,
        "drift": drift,
    }
    return finish(dest, "deepstream", data_rec, outputs)


def _precision(onnx_path: Path) -> str:
    """The precision nvinfer should announce: the ONNX stage's (model.fp16.onnx → fp16)."""
    stem = onnx_path.name.removesuffix(".onnx")
    return next((p for p in D.NETWORK_MODES if stem.endswith(f".{p}")), "fp32")


def _notes(variant: str, drift: dict | None) -> list[str]:
    head = [
        "nvinfer config written by `python -m pipeline package deepstream` (docs/serving.md).",
        "CaiT normalizes per channel; nvinfer has one net-scale-factor: the offsets are exact,",
        "the scale is the mean of the three stds (each channel off by at most 1.33 %).",
    ]
    if drift is None:
        return head + ["Preprocessing drift not measured here (pass --data DIR); see docs."]
    lines = [f"Measured on {drift['images']} images of {drift['data']} (CPU, vs exact):"]
    for v, f in drift["variants"].items():
        if v == "exact":
            continue
        lines.append(
            f"  {v:<17} top-1 agreement {f['top1_agreement']:.2%}, max |dlogit| "
            f"{f['max_abs']:.3g}, mean |dlogit| {f['mean_abs']:.3g}"
        )
    return head + lines
