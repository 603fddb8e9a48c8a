"""The artifact folder: its layout (names, directories), atomic writes, hashes, `manifest.json`.

Layout (a compatibility surface: deployed folders and scripts rely on these names):
    engines/<model>[_d<depth>]/<fp32|fp16|int8|fp8>/
        model.onnx  model.fused.onnx  model.fp16.onnx  model.int8.onnx  model.fp8.onnx  (ONNX_STAGES)
        model.<…>.engine  model.<…>.build_engine.sh                     (engine_path, script_path)
        calib.json  fusion_report.json/.md  parity.json/.md/.png  manifest.json
        triton/  deepstream/                 (`package`: a model repository, an nvinfer config)

Every stage writes through a temporary name in the destination folder and renames into place, so
an interrupted or failed run never leaves a half-written artifact behind. Each artifact folder has
one `manifest.json`; a stage records itself under its own key with `inputs` (hashes),
`settings`, `outputs` (hashes) and its figures, and returns a `StageRecord`. A stage whose inputs
and settings did not change is not re-run (`reuse`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import UserError

MANIFEST = "manifest.json"
EXPORTED, FUSED, FP16, INT8 = "model.onnx", "model.fused.onnx", "model.fp16.onnx", "model.int8.onnx"
FP8 = "model.fp8.onnx"
ONNX_STAGES = {
    "onnx": EXPORTED,
    "fused": FUSED,
    "fp16": FP16,
    "int8": INT8,
    "fp8": FP8,
}  # ladder order
PRECISIONS = ("fp32", "fp16", "int8", "fp8")
CALIB_CACHE = "calib.json"
FUSION_REPORT = "fusion_report.json"
PARITY_JSON, PARITY_MD, PARITY_PNG = "parity.json", "parity.md", "parity.png"
PADDLE_DIR = "paddle"
CANDIDATES = "candidates"  # attention variants of a model, their engines and timings
TRITON_REPO, DEEPSTREAM_DIR = "triton", "deepstream"  # `package`'s folders in an artifact dir
ROOT = Path("engines")


def model_dir_name(model: str, depth: int | None = None) -> str:
    """<model>, or <model>_d<depth> when the depth was overridden (a different network)."""
    return model if depth is None else f"{model}_d{depth}"


def artifact_dir(
    model: str, precision: str = "fp32", *, depth: int | None = None, out=None
) -> Path:
    """--out, else engines/<model>[_d<depth>]/<precision>."""
    return Path(out) if out else ROOT / model_dir_name(model, depth) / precision


def artifact_dirs(model: str, prefer: str, *, depth: int | None = None, out=None) -> list[Path]:
    """Where a command looks for artifacts: --out, else each precision folder, `prefer` first."""
    if out:
        return [Path(out)]
    order = [prefer] + [p for p in PRECISIONS if p != prefer]
    return [artifact_dir(model, p, depth=depth) for p in order]


def engine_path(onnx_path, out_dir) -> Path:
    """model.fp16.onnx → <out_dir>/model.fp16.engine (one engine per precision, same folder)."""
    return Path(out_dir) / (Path(onnx_path).name.removesuffix(".onnx") + ".engine")


def script_path(onnx_path, out_dir) -> Path:
    """model.fp16.onnx → <out_dir>/model.fp16.build_engine.sh."""
    return Path(out_dir) / (Path(onnx_path).name.removesuffix(".onnx") + ".build_engine.sh")


def candidate_path(model_path, name: str, suffix: str = ".onnx") -> Path:
    """model.fp16.onnx, "onnx" → <dir>/candidates/model.fp16.onnx.onnx: one attention variant
    (and, with suffix ".engine" / ".times.json", its engine and timings)."""
    model_path = Path(model_path)
    stem = model_path.name.removesuffix(".onnx").removesuffix(".engine")
    return model_path.parent / CANDIDATES / f"{stem}.{name}{suffix}"


def present_stages(out_dir) -> list[tuple[str, Path | None]]:
    """[(stage, artifact)] for Paddle and every artifact found in `out_dir`, in ladder order."""
    out_dir = Path(out_dir)
    found: list[tuple[str, Path | None]] = [("paddle", None)]
    found += [(name, out_dir / f) for name, f in ONNX_STAGES.items() if (out_dir / f).exists()]
    found += [
        (f"engine:{e.stem.removeprefix('model.')}", e) for e in sorted(out_dir.glob("*.engine"))
    ]
    return found


def find_artifact(kind: str, dirs: list[Path]) -> Path:
    """The artifact of `kind` ("onnx", "fused", …, "engine") in the first of `dirs` holding it."""
    for d in dirs:
        if kind == "engine":
            engines = sorted(Path(d).glob("*.engine"))
            if engines:
                return engines[-1]
        elif (Path(d) / ONNX_STAGES[kind]).exists():
            return Path(d) / ONNX_STAGES[kind]
    what = "*.engine" if kind == "engine" else ONNX_STAGES[kind]
    raise UserError(
        f"no {what} in {', '.join(str(d) for d in dirs)}: build it first "
        f"(python -m pipeline build …) or pass --out DIR"
    )


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and prove we can write there, or raise one clear UserError."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".probe-"):
            pass
    except OSError as e:
        raise UserError(
            f"cannot write to output directory {p}: {e.strerror or e}; choose another --out"
        ) from None
    return p


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dst`; rename it onto `dst` only if the block succeeds.

    `suffix` keeps the extension for tools that dispatch on it (e.g. `.onnx`).
    """
    dst = Path(dst)
    ensure_writable_dir(dst.parent)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=suffix + ".tmp")
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make artifacts private to their builder
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


log = logging.getLogger(__name__)
ONNX_2GB = 2**31 - 1


def save_onnx(model, dst: str | os.PathLike, external: bool = False) -> Path:
    """Atomically write an ONNX model to `dst`, with external data in `<dst>.data` when asked or
    past the 2 GB protobuf limit.

    Both files are written under their final names in a temporary folder beside `dst`, then
    renamed (data first), so the external-data reference inside the model stays valid; writing
    to a temporary *name* instead would bake that name into the model.
    """
    import onnx

    dst = Path(dst)
    ensure_writable_dir(dst.parent)
    external = external or model.ByteSize() > ONNX_2GB
    data = dst.with_name(dst.name + ".data")
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as work:
        tmp = Path(work) / dst.name
        if external:
            onnx.save_model(
                model,
                str(tmp),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data.name,
                size_threshold=1024,
            )
            os.replace(tmp.with_name(data.name), data)
        else:
            onnx.save_model(model, str(tmp))
            if data.exists():
                data.unlink()  # stale data of an earlier, larger model
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    return dst


def write_text_atomic(dst: str | os.PathLike, text: str) -> Path:
    with atomic_path(dst) as tmp:
        tmp.write_text(text)
    return Path(dst)


def write_json_atomic(dst: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(dst, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def onnx_hash(path: str | os.PathLike) -> str:
    """Hash of an ONNX model including its external-data files (if any) beside it."""
    path = Path(path)
    h = hashlib.sha256(sha256_file(path).encode())
    data = path.with_name(path.name + ".data")
    if data.exists():
        h.update(sha256_file(data).encode())
    return h.hexdigest()


_TOOLS = (
    "paddlepaddle",
    "paddle2onnx",
    "onnx",
    "onnxruntime",
    "onnx-graphsurgeon",
    "polygraphy",
    "numpy",
    "tensorrt",
    "torch",
    "timm",
)


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "pipeline": __version__}
    for name in _TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(folder: str | os.PathLike) -> dict:
    p = Path(folder) / MANIFEST
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{p} is not valid JSON; delete it and re-run the stage") from None


def record_stage(folder: str | os.PathLike, stage: str, record: dict) -> Path:
    """Merge `record` under `stages[stage]` of the folder's manifest (atomically)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    manifest.setdefault("stages", {})
    manifest["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest["versions"] = tool_versions()
    manifest["stages"][stage] = record
    return write_json_atomic(folder / MANIFEST, manifest)


def stage_is_fresh(
    folder: str | os.PathLike,
    stage: str,
    inputs: dict[str, str],
    settings: dict,
    outputs: list[str | os.PathLike],
) -> bool:
    """True when `stage` already ran with the same input hashes and settings and its outputs exist."""
    rec = read_manifest(folder).get("stages", {}).get(stage)
    if not rec:
        return False
    return (
        rec.get("inputs") == inputs
        and rec.get("settings") == settings
        and all(Path(o).exists() for o in outputs)
    )


@dataclasses.dataclass
class StageRecord:
    """What one stage did: its manifest key and entry, the artifacts it wrote (name → path), and
    whether it was reused because its inputs and settings had not changed."""

    stage: str
    data: dict
    outputs: dict[str, Path]
    reused: bool = False

    @property
    def path(self) -> Path:
        """The stage's main artifact (its first output)."""
        return next(iter(self.outputs.values()))

    def __getitem__(self, key):
        return self.data[key]

    def get(self, key, default=None):
        return self.data.get(key, default)


def reuse(
    folder, stage: str, inputs: dict, settings: dict, outputs: dict[str, Path], force: bool = False
) -> StageRecord | None:
    """The recorded StageRecord when `stage` ran with these inputs and settings and its outputs
    still exist (logged as up to date); None when it must run."""
    if force or not stage_is_fresh(folder, stage, inputs, settings, list(outputs.values())):
        return None
    log.info("%s: up to date (%s)", stage, ", ".join(str(p) for p in outputs.values()))
    return StageRecord(stage, read_manifest(folder)["stages"][stage], dict(outputs), reused=True)


def finish(folder, stage: str, data: dict, outputs: dict[str, Path]) -> StageRecord:
    """Record `data` under `stage` in the folder's manifest and return the StageRecord."""
    record_stage(folder, stage, data)
    return StageRecord(stage, data, dict(outputs))
