"""DeepStream `nvinfer` (Gst-nvinfer) classifier configuration for a CaiT engine.

Keys as the nvinfer property parser names them (`gstnvinfer_property_parser.h`): network-type 1
(classifier), network-mode 0 fp32 / 1 int8 / 2 fp16, the engine and ONNX, `custom-lib-path` (the
plugin library, dlopen'ed by nvinfer so that the plugin creators register before the engine is
deserialized), batch-size, infer-dims, net-scale-factor + offsets, scaling. Relative paths are
relative to the config file, as nvinfer resolves them.

The normalization and scaling values come from `pipeline.data.nvinfer`, which also emulates them
to measure the drift; the drift figures, when measured, are written into the file as comments.
"""

from __future__ import annotations

import dataclasses

from pipeline.data.nvinfer import SCALING_FILTERS, net_scale_and_offsets

NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}
CLASSIFIER = 1  # network-type
PRIMARY = 1  # process-mode: full frames (2 = objects of an upstream detector)


@dataclasses.dataclass(frozen=True)
class NvinferModel:
    engine: str  # model-engine-file, relative to the config
    onnx: str  # onnx-file: nvinfer builds the engine from it when the engine file is missing
    precision: str  # fp32 | fp16 | int8 (the ONNX's: strongly typed engines)
    input_name: str
    input_dims: tuple[int, int, int]
    output_name: str
    batch_size: int  # the engine profile's max
    plugin_path: str | None  # custom-lib-path, None for a plugin-free engine
    geometry: str = "stretch"  # stretch | pad (crop needs an upstream element)
    scaling_filter: str = "bilinear"
    threshold: float = 0.0
    process_mode: int = PRIMARY


def config_text(m: NvinferModel, labels: str, notes: list[str] = ()) -> str:
    scale, offsets = net_scale_and_offsets()
    lines = [f"# {n}" for n in notes]
    lines += [
        "[property]",
        "gpu-id=0",
        f"gie-unique-id={1 if m.process_mode == PRIMARY else 2}",
        f"process-mode={m.process_mode}",
        f"network-type={CLASSIFIER}",
        f"network-mode={NETWORK_MODES[m.precision]}",
        f"model-engine-file={m.engine}",
        f"onnx-file={m.onnx}",
    ]
    if m.plugin_path:
        lines.append(f"custom-lib-path={m.plugin_path}")
    lines += [
        f"labelfile-path={labels}",
        f"batch-size={m.batch_size}",
        f"infer-dims={';'.join(map(str, m.input_dims))}",
        f"output-blob-names={m.output_name}",
        "model-color-format=0",  # RGB, as CaiT was trained
        f"net-scale-factor={scale:.10g}",
        f"offsets={';'.join(f'{o:.6g}' for o in offsets)}",
        f"maintain-aspect-ratio={int(m.geometry == 'pad')}",
        f"symmetric-padding={int(m.geometry == 'pad')}",
        f"scaling-filter={SCALING_FILTERS[m.scaling_filter]}",
        f"classifier-threshold={m.threshold:g}",
    ]
    return "\n".join(lines) + "\n"


def labels_text(names: list[str]) -> str:
    """A classifier's label file: one line per output layer, its labels separated by ';'."""
    return ";".join(n.replace(";", ",") for n in names) + "\n"
