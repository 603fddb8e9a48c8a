"""`eval`: top-1/top-5 of one backend on a labelled image folder, printed like the reference."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.artifacts import FUSED, find_artifact, write_json_atomic
from pipeline.commands.common import (
    add_model_args,
    add_triton_args,
    dirs_from_args,
    preset_from_args,
    served_from_args,
)
from pipeline.data import ImageFolderDataset, class_balanced_sample, iter_batches
from pipeline.errors import UserError
from pipeline.parity.metrics import topk_hits
from pipeline.runners import open_runner

# a stage of the artifact folder; `openvino`: the plugin-free graph (model.fused.onnx, else
# model.onnx) on OpenVINO's CPU runtime; `triton`: the model a Triton server serves (--url)
BACKENDS = ("paddle", "onnx", "fused", "fp16", "int8", "fp8", "engine", "openvino", "triton")


def add_arguments(p):
    add_model_args(
        p, out_help="artifact directory (default: engines/<model>/<precision>, then …/fp32)"
    )
    p.add_argument(
        "--data",
        required=True,
        help="labelled images: class folders, synset "
        "folders, official val names, or a flat folder with --labels",
    )
    p.add_argument("--labels", help="PaddleClas-style label list (`name.JPEG 65` per line)")
    p.add_argument("--backend", choices=BACKENDS, default="onnx")
    p.add_argument(
        "--limit",
        type=int,
        help="evaluate N images only: a seeded class-balanced "
        "subset (the first N of a class-folder tree would all be one class)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--json", help="where to write the result (default: <artifact dir>/eval_<backend>.json)"
    )
    p.add_argument("--plugins", help="plugin library for the engine backend")
    add_triton_args(p, "evaluate the model it serves (--backend triton)")
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="skip (and count) unreadable images instead of failing",
    )


def run(args) -> int:
    from tqdm import tqdm

    preset = preset_from_args(args)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    served = served_from_args(args, preset)
    if (args.backend == "triton") != (served is not None):
        raise UserError("--backend triton and --url HOST:PORT go together: give both or neither")
    ds = ImageFolderDataset.from_dir(args.data, args.labels)  # empty dir / bad list → UserError
    if not ds.labelled:
        raise UserError(
            f"{args.data} has no labels: use class folders, official val names or --labels FILE"
        )
    samples = list(ds.samples)
    if args.limit and args.limit < len(samples):
        samples = sorted(class_balanced_sample(samples, args.limit, seed=0), key=lambda s: s.path)
    prefer = {"fp16": "fp16", "int8": "int8", "fp8": "fp8"}.get(args.backend, "fp32")
    dirs = dirs_from_args(args, preset, prefer)
    path, runtime = None, "onnxruntime"
    if args.backend == "openvino":
        runtime = "openvino"
        path = find_artifact("fused" if any((d / FUSED).exists() for d in dirs) else "onnx", dirs)
    elif args.backend not in ("paddle", "triton"):
        path = find_artifact(args.backend, dirs)
    stage = open_runner(
        args.backend,
        path,
        preset=preset,
        weights=args.weights,
        plugins=args.plugins,
        runtime=runtime,
        served=served,
    )
    if stage.input_size != preset.img_size:
        raise UserError(
            f"{args.backend} takes {stage.input_size}-px images but {preset.name} is "
            f"{preset.img_size} px: wrong --model, --out or --triton-model?"
        )

    stream = iter_batches(samples, size=preset.img_size, batch_size=args.batch_size)
    top1 = top5 = n = 0
    predictions = {}
    t0 = time.perf_counter()
    bar = tqdm(total=len(samples), unit="img", desc=f"eval [{args.backend}]")
    for batch in stream:
        if stream.skipped and not args.skip_unreadable:
            p, why = stream.skipped[0]
            raise UserError(f"cannot read image {p}: {why} (pass --skip-unreadable to skip)")
        logits = stage.run(batch.images)
        if logits.shape[1] <= int(batch.labels.max()):
            raise UserError(
                f"labels go up to {int(batch.labels.max())} but {preset.name} has "
                f"{logits.shape[1]} classes: wrong --labels or --model?"
            )
        top1 += int(topk_hits(logits, batch.labels, 1).sum())
        top5 += int(topk_hits(logits, batch.labels, 5).sum())
        order = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        predictions.update({str(p): [int(i) for i in row] for p, row in zip(batch.paths, order)})
        n += len(batch.labels)
        bar.update(len(batch.labels))
    bar.close()
    if stream.skipped and not args.skip_unreadable:
        p, why = stream.skipped[0]
        raise UserError(f"cannot read image {p}: {why} (pass --skip-unreadable to skip)")
    if n == 0:
        raise UserError(f"no readable image in {args.data}")
    result = {"acc_top1": top1 / n, "acc_top5": top5 / n}
    print(result)
    record = {
        "model": preset.name,
        "backend": args.backend,
        "artifact": str(path) if path else None,
        "served": served,
        "data": str(ds.root),
        "images": n,
        "skipped": [str(p) for p, _ in stream.skipped],
        **result,
        "seconds": round(time.perf_counter() - t0, 1),
        "top5": predictions,  # per image, class indices best first
    }
    dst = (
        Path(args.json)
        if args.json
        else (path.parent if path else dirs[0]) / f"eval_{args.backend}.json"
    )
    write_json_atomic(dst, record)
    print(f"wrote {dst}")
    return 0
