"""What a serving configuration is derived from: the ONNX's I/O and the engine's profile.

    deployable(onnx_path, batch=None) -> Deployable

The engine is `<stem>.engine` beside the ONNX (`artifacts.engine_path`). Its profile comes from
its record in the folder's manifest (written by the engine stage, built or skipped), names,
shapes and dtypes from the ONNX: a strongly typed engine has the ONNX's I/O types. An engine
whose record disagrees with the ONNX, or that has no record, is refused: a configuration must
never be guessed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx

from pipeline.artifacts import engine_path, onnx_hash, read_manifest
from pipeline.errors import UserError
from pipeline.onnx_io import batched_input
from pipeline.runners import class_name
from pipeline.serving.triton import Tensor
from pipeline.stages.engine import has_plugin_nodes, stage_key
from pipeline.trt.settings import DEFAULTS


@dataclasses.dataclass(frozen=True)
class Deployable:
    onnx: Path
    engine: Path  # where the engine is, or where its build script writes it
    built: bool  # the engine exists
    batch: tuple[int, int, int]  # optimization profile (min, opt, max)
    input: Tensor
    output: Tensor
    needs_plugins: bool
    record: dict  # the engine's manifest record ({} when none)

    @property
    def labels(self) -> list[str]:
        n = self.output.dims[-1]
        return [class_name(i, n) for i in range(n)]


def _tensor(value_info, what: str) -> Tensor:
    t = value_info.type.tensor_type
    dims = t.shape.dim[1:]
    if any(not d.HasField("dim_value") for d in dims):
        raise UserError(f"{what} {value_info.name!r} needs static dims but the batch axis")
    return Tensor.from_onnx(
        value_info.name, onnx.TensorProto.DataType.Name(t.elem_type), [d.dim_value for d in dims]
    )


def deployable(onnx_path, batch: tuple[int, int, int] | None = None) -> Deployable:
    """See the module doc. `batch`: the profile for an engine still to be built (refused when
    it contradicts an existing engine's)."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path} not found: build it first (python -m pipeline build …)")
    model = onnx.load(str(onnx_path), load_external_data=False)
    name, _ = batched_input(model)  # one input, static but for the batch axis
    graph_input = next(i for i in model.graph.input if i.name == name)
    inp, out = _tensor(graph_input, "input"), _tensor(model.graph.output[0], "output")
    engine = engine_path(onnx_path, onnx_path.parent)
    record = read_manifest(onnx_path.parent).get("stages", {}).get(stage_key(engine)) or {}
    built = engine.is_file()
    if built and record.get("status") != "built":
        raise UserError(
            f"{engine} has no engine record in {onnx_path.parent / 'manifest.json'} (built by "
            "trtexec?), so its profile is unknown: rebuild it with `python -m pipeline engine "
            f"{onnx_path} -o {engine}`, or delete it to package the ONNX and its build script"
        )
    if built:
        _check_record(engine, record, onnx_path, inp)
        recorded = tuple(int(b) for b in record.get("settings", {}).get("batch", ()))
        if batch is not None and tuple(batch) != recorded:
            raise UserError(
                f"{engine.name} was built with --batch {':'.join(map(str, recorded))}; drop "
                "--batch or rebuild the engine with the profile you want"
            )
        batch = recorded
    elif batch is None:
        batch = tuple(record.get("settings", {}).get("batch", DEFAULTS.batch))
    if len(batch) != 3:
        raise UserError(f"{engine.name}: its record holds no min:opt:max profile; rebuild it")
    _check_profile(engine, tuple(int(b) for b in batch))
    return Deployable(
        onnx=onnx_path,
        engine=engine,
        built=built,
        batch=tuple(int(b) for b in batch),
        input=inp,
        output=out,
        needs_plugins=has_plugin_nodes(model),
        record=record,
    )


def _check_profile(engine: Path, batch: tuple[int, int, int]) -> None:
    """Servers send any batch from 1 to their maximum: the profile must cover exactly that."""
    bmin, bopt, bmax = batch
    if bmax < 1:
        raise UserError(
            f"{engine.name}: the engine's optimization profile has max batch {bmax}; a server "
            "needs max_batch_size ≥ 1: rebuild the engine with --batch 1:8:32 (min:opt:max)"
        )
    if bmin != 1:
        raise UserError(
            f"{engine.name}: the engine's profile starts at batch {bmin}, but Triton's dynamic "
            f"batcher and nvinfer send any batch from 1 up; rebuild with --batch 1:{bopt}:{bmax}"
        )


def _check_record(engine: Path, record: dict, onnx_path: Path, inp: Tensor) -> None:
    """The engine must have been built from this very ONNX, with its input."""
    want = record.get("inputs", {}).get("onnx")
    if want and want != onnx_hash(onnx_path):
        raise UserError(
            f"{engine.name} was built from another {onnx_path.name} (hash differs): rebuild "
            f"the engine (python -m pipeline engine {onnx_path} -o {engine})"
        )
    rec_in = record.get("input") or {}
    shape = [int(d) for d in rec_in.get("shape", [])]
    if rec_in.get("name") != inp.name or tuple(shape[1:]) != inp.dims:
        raise UserError(
            f"{engine.name}'s input {rec_in.get('name')!r} {shape} does not match the ONNX's "
            f"{inp.name!r} [-1, {', '.join(map(str, inp.dims))}]: rebuild the engine from "
            f"{onnx_path.name}"
        )
