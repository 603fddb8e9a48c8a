"""Parity stage: the ladder Paddle fp32 → ONNX → fused → fp16 / int8 / fp8 → engine, on the same images.

Every stage present in the artifact directory runs on the same preprocessed images; each is
compared with Paddle (top-1 agreement, top-5 overlap, |Δlogit|, cosine) and, with labels, scored
(top-1/top-5). Thresholds are data (`pipeline/parity/metrics.py`); a violation raises
`ParityError` (exit 1) after parity.json / parity.md / parity.png are written, so the report of a
failed build is still there to read.

Images: with `data`, the parity set is the seeded class-balanced sample that the INT8 stage set
aside (same seed and size as recorded in the manifest), so it never overlaps the calibration
images; without, `sample_images` (agreement only, no accuracy).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import (
    PARITY_JSON,
    PARITY_MD,
    PARITY_PNG,
    StageRecord,
    finish,
    present_stages,
    read_manifest,
    write_json_atomic,
)
from pipeline.data import (
    ImageFolderDataset,
    class_balanced_sample,
    iter_batches,
    split_calib_parity,
)
from pipeline.errors import UserError
from pipeline.numerics import sample_images
from pipeline.parity import metrics as M
from pipeline.parity.report import write_markdown, write_plot
from pipeline.runners import open_runner
from pipeline.stages.quantize import DEFAULT_PARITY_IMAGES, parity_count

log = logging.getLogger(__name__)

BISECT_IMAGES = 8  # per-block activations of a few images are enough to see where error enters


class ParityError(UserError):
    """A stage broke a threshold: not bad input, so exit 1 rather than 2."""

    exit_code = 1


def parity_images(out_dir: Path, data, images: int, labels=None, seed: int | None = None):
    """(samples, labelled, description) of the parity set — see module doc.

    When the INT8 stage calibrated on this same folder, the parity set is the split it reserved
    (same size and seed, so never a calibration image). Any other folder shares no image with the
    calibration set: a seeded class-balanced sample of it is used.
    """
    recorded = read_manifest(out_dir).get("stages", {})
    # INT8 and FP8 calibrate on the same split of a folder (same rule, same seed)
    rec = recorded.get("int8") or recorded.get("fp8") or {}
    settings = rec.get("settings", {})
    seed = int(settings.get("seed", 0)) if seed is None else seed
    ds = ImageFolderDataset.from_dir(data, labels)
    calib_root = rec.get("calibration", {}).get("data_root")
    if calib_root is not None and Path(calib_root) == Path(ds.root).resolve():
        reserved = int(settings.get("parity_images", DEFAULT_PARITY_IMAGES))
        pool = split_calib_parity(
            ds.samples, 0, parity_count(len(ds), max(reserved, 0)), seed=seed
        ).parity
        source = f"held-out split of {ds.root} (disjoint from calibration), seed {seed}"
        if images > len(pool):
            log.warning(
                "parity: %d images asked, the held-out parity split has %d", images, len(pool)
            )
        if not pool:
            raise UserError(
                f"{ds.root} is the calibration folder and the INT8 stage reserved no "
                "parity images from it; pass another --data folder"
            )
        return pool[:images], ds.labelled, source
    pool = class_balanced_sample(ds.samples, min(images, len(ds)), seed=(seed, 1))
    return pool, ds.labelled, f"{ds.root} (not used for calibration), seed {seed}"


def _load(samples, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    stream = iter_batches(samples, size=size, batch_size=32)
    xs, ys = [], []
    for b in stream:
        xs.append(b.images)
        ys.append(b.labels)
    if not xs:
        raise UserError("no readable parity image")
    labels = np.concatenate(ys) if ys[0] is not None else None
    return np.concatenate(xs), labels


def _run(stage, x: np.ndarray, batch_size: int, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    out = []
    for i in tqdm(
        range(0, len(x), batch_size),
        desc=f"parity [{stage.name}]",
        unit="batch",
        disable=not progress,
        leave=False,
    ):
        out.append(stage.run(x[i : i + batch_size]))
    return np.concatenate(out)


def bisect_stage(ref_stage, stage, x: np.ndarray, depth: int) -> dict:
    """Worst per-token relative error of every LayerNorm input (residual-stream checkpoint) of
    `stage` vs Paddle, and the checkpoint where it first jumps."""
    _, ref_taps = ref_stage.run(x, taps=True)
    _, taps = stage.run(x, taps=True)
    if len(ref_taps) != len(taps):
        raise UserError(
            f"bisect: {stage.name} has {len(taps)} LayerNorms, Paddle "
            f"{len(ref_taps)}; cannot align checkpoints"
        )
    return M.bisect_report(ref_taps, taps, depth)


def bisect_engine(engine_onnx: Path, reference_onnx: Path, x: np.ndarray, depth: int, **kw):
    """The engine's per-block error: `engine_onnx` (the model the engine was built from) built
    again with every checkpoint marked as an output, run on `x`, compared with the fp32
    `reference_onnx` on ONNX Runtime. Needs TensorRT and a GPU (`trt.bisect`)."""
    from pipeline.trt.bisect import marked_engine_taps

    _, ref_taps = open_runner("reference", reference_onnx, taps=True).run(x, taps=True)
    taps = marked_engine_taps(engine_onnx, x, **kw)
    return {
        **M.bisect_report(ref_taps, taps, depth),
        "reference": reference_onnx.name,
        "engine_onnx": engine_onnx.name,
    }


def parity_ladder(
    out_dir: str | Path,
    *,
    preset,
    weights=None,
    data=None,
    images: int = 256,
    thresholds=None,
    bisect: bool | str | list = False,
    labels=None,
    seed: int | None = None,
    batch_size: int = 8,
    raise_on_violation: bool = True,
    progress: bool = True,
    served: dict | None = None,
    backend: str = "onnxruntime",
) -> StageRecord:
    """Stage: run the ladder over every artifact in `out_dir`; write parity.json/.md/.png.

    `backend`: the runtime of the ONNX rungs (and of their bisect), "onnxruntime" or "openvino".

    `bisect`: True bisects the failing stages (else the one with the lowest cosine); a stage
    name or list of names bisects those. Returns the StageRecord (`parity` in the manifest).
    Raises ParityError on a threshold violation (after writing the reports) unless
    `raise_on_violation=False`. `served` ({url, model, protocol, concurrency}) adds the model a
    Triton server serves as the last rung, `triton`.
    """
    out_dir = Path(out_dir)
    if images < 1:
        raise UserError(f"--images must be >= 1, got {images}")
    t0 = time.perf_counter()
    limits = M.load_thresholds(thresholds)
    # connect first: an unreachable server or unknown model fails before any image is read
    served_runner = open_runner("triton", served=served) if served else None
    if data is not None:
        samples, _, source = parity_images(out_dir, data, images, labels, seed)
        x, y = _load(samples, preset.img_size)
    else:
        x, y = (
            sample_images(images, preset.img_size, seed=seed or 0, channels=preset.in_chans),
            None,
        )
        source = "synthetic sample_images, no labels"

    stages, logits, skipped = _run_ladder(
        out_dir, x, preset, weights, batch_size, progress, backend
    )
    if served_runner is not None:
        stages.append(("triton", None))
        logits["triton"] = _run(served_runner, x, batch_size, progress)
    ref = logits["paddle"]
    figs = {}
    for name, path in stages:
        figs[name] = {
            **M.stage_figures(ref, logits[name], y),
            "artifact": path.name if path else None,
        }
    if served:
        figs["triton"]["artifact"] = f"{served['model']} @ {served['url']} ({served['protocol']})"
    errors = {name: np.abs(logits[name].astype(np.float64) - ref).max(axis=1) for name, _ in stages}
    bad = [
        v for name, _ in stages[1:] for v in M.violations(name, figs[name], figs["paddle"], limits)
    ]
    record = {
        "preset": preset.name,
        "images": int(len(x)),
        "source": source,
        "backend": backend,
        "labelled": y is not None,
        "stages": figs,
        "skipped": skipped,
        "thresholds": limits,
        "violations": bad,
    }
    if bisect:
        record["bisect"] = _bisect(
            bisect, bad, stages, figs, x, preset, weights, backend, out_dir, skipped
        )
    record["seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(out_dir / PARITY_JSON, record)
    write_markdown(out_dir / PARITY_MD, record)
    write_plot(out_dir / PARITY_PNG, record, errors)
    rec = finish(
        out_dir,
        "parity",
        {
            "settings": {
                "images": int(len(x)),
                "source": source,
                "thresholds": limits,
                "bisect": bisect,
                "backend": backend,
            },
            **record,
        },
        {
            PARITY_MD: out_dir / PARITY_MD,
            PARITY_JSON: out_dir / PARITY_JSON,
            PARITY_PNG: out_dir / PARITY_PNG,
        },
    )
    for name, f in figs.items():
        if name != "paddle":
            acc = f" top-1 {f['acc_top1']:.2%}" if "acc_top1" in f else ""
            log.info(
                "parity: %-8s agree %.2f%%  max|Δ| %.3g  cos %.6f%s",
                name,
                100 * f["top1_agreement"],
                f["max_abs"],
                f["cosine_mean"],
                acc,
            )
    if bad and raise_on_violation:
        raise ParityError(
            "parity ladder failed: " + "; ".join(bad) + f" (report: {out_dir / PARITY_MD})"
        )
    return rec


def _run_ladder(out_dir, x, preset, weights, batch_size, progress, backend="onnxruntime"):
    """Run every present stage on `x`: ([(name, path)] in ladder order, {name: logits},
    {name: why skipped})."""
    present = present_stages(out_dir)
    ladder = [n for n, _ in present]
    stages, logits, skipped = [], {}, {}
    # Paddle (the slowest rung) runs last, so a broken artifact fails before minutes of work.
    for name, path in sorted(present, key=lambda s: s[0] == "paddle"):
        try:
            runner = open_runner(
                name, path, preset=preset, weights=weights, seed=0, runtime=backend
            )
        except UserError as e:
            if not name.startswith("engine"):
                raise
            # an engine built elsewhere cannot run without TensorRT: say so, check the rest
            skipped[name] = str(e)
            log.warning("parity: skipping %s: %s", name, e)
            continue
        stages.append((name, path))
        logits[name] = _run(runner, x, batch_size, progress)
    stages.sort(key=lambda s: ladder.index(s[0]))
    return stages, logits, skipped


def _bisect(bisect, bad, stages, figs, x, preset, weights, backend, out_dir, skipped):
    """Per-checkpoint errors of the stages to bisect (named, else failing, else the worst).

    ONNX stages are compared with Paddle through their LayerNorm inputs; an engine stage is built
    again from its ONNX with those tensors marked as outputs and compared with the fp32 ONNX."""
    failing = sorted({v.split(":")[0] for v in bad} | {v.split(": ")[0] for v in bad})
    present = [n for n, _ in stages if n != "paddle"]
    if not isinstance(bisect, bool):  # explicit stage names
        targets = [bisect] if isinstance(bisect, str) else list(bisect)
        unknown = [t for t in targets if t not in present]
        not_run = [t for t in unknown if t in skipped]
        if not_run:
            raise UserError(
                f"--bisect {not_run[0]}: the engine did not run here ({skipped[not_run[0]]}); "
                "bisect it on the TensorRT host that built it"
            )
        if unknown:
            raise UserError(
                f"--bisect {', '.join(unknown)}: not a stage that ran here "
                f"(present: {', '.join(present) or 'none'})"
            )
    else:  # the failing stages, else the worst one
        targets = [n for n in present if n in failing] or (
            [min(present, key=lambda n: figs[n]["cosine_mean"])] if present else []
        )
    xb = x[:BISECT_IMAGES]
    out = {}
    onnx_targets = [n for n in targets if not n.startswith("engine")]
    if onnx_targets:
        ref_taps = open_runner("paddle", preset=preset, weights=weights, taps=True)
        for n in onnx_targets:
            runner = open_runner(n, dict(stages)[n], taps=True, runtime=backend)
            out[n] = bisect_stage(ref_taps, runner, xb, preset.depth)
    for n in (t for t in targets if t.startswith("engine")):
        engine_onnx, plugins = engine_source(out_dir, dict(stages)[n])
        reference = next((p for name, p in stages if name in ("fused", "onnx")), None)
        if reference is None:
            raise UserError(f"--bisect {n}: no fp32 model.onnx or model.fused.onnx beside it")
        out[n] = bisect_engine(engine_onnx, reference, xb, preset.depth, plugins=plugins)
    for n, b in out.items():
        log.info("parity: bisect %s — first jump at %s (%s)", n, b["first_jump"], b["remedy"])
    return out


def engine_source(out_dir, engine: Path) -> tuple[Path, str | None]:
    """The ONNX an engine was built from and its plugin library, from the engine's record."""
    rec = read_manifest(out_dir or engine.parent).get("stages", {}).get(f"engine/{engine.name}")
    onnx_name = (rec or {}).get("onnx")
    if not onnx_name:
        raise UserError(
            f"--bisect: {engine.name} has no record of the ONNX it was built from; rebuild it "
            "with `python -m pipeline engine` (trtexec engines are not recorded)"
        )
    lib = (rec.get("plugin_library") or {}).get("path")
    path = Path(onnx_name)
    return (path if path.is_file() else Path(out_dir or engine.parent) / path.name), lib
