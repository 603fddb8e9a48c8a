"""`choose`: keep the fastest candidate engine, measured on the target (the target script's last
step; the rule lives once, in pipeline/trt/choice.py)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.artifacts import read_manifest
from pipeline.errors import UserError
from pipeline.stages.engine import choice_key, install_choice
from pipeline.trt import profile


def add_arguments(p):
    p.add_argument(
        "engine",
        help="the engine to keep the winner as (e.g. model.fp16.engine); "
        "its folder's manifest lists the candidates and their timing files",
    )
    p.add_argument("--plugins", help="plugin library the plugin candidates were built with")
    p.add_argument(
        "--trt",
        default=os.environ.get("TRT_VERSION"),
        help="TensorRT version that built them, when the tensorrt Python package "
        "is not installed (default: $TRT_VERSION)",
    )


def run(args) -> int:
    engine = Path(args.engine)
    pending = read_manifest(engine.parent).get("stages", {}).get(choice_key(engine))
    if not pending:
        raise UserError(
            f"no attention candidates for {engine.name} in "
            f"{engine.parent / 'manifest.json'}: build with --attention auto first"
        )
    medians = {}
    for c in pending["candidates"]:
        times = engine.parent / c["times"]
        if times.is_file():
            medians[c["name"]] = profile.compute_percentiles(profile.load_json(times))["p50"]
    if not medians:
        raise UserError(
            f"no candidate of {engine.name} was built and timed: run the target "
            "script first (it writes candidates/*.engine and *.times.json)"
        )
    install_choice(
        engine.parent,
        engine,
        pending,
        medians,
        plugins=args.plugins,
        trt_version=args.trt,
        measured_with="trtexec --exportTimes, median computeMs",
    )
    return 0
