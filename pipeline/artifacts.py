"""Artifact hygiene shared by every stage: atomic writes, content hashes and `manifest.json`.

Every stage writes through a temporary name in the destination folder and renames into place, so
an interrupted or failed run never leaves a half-written artifact behind. Each artifact folder has
one `manifest.json`; a stage records itself under its own key (inputs' hashes, tool versions,
settings, figures) so a later stage can tell whether its inputs changed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

MANIFEST = "manifest.json"


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
    out = {"python": platform.python_version(), "pipeline": _pipeline_version()}
    for name in _TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _pipeline_version() -> str:
    from pipeline import __version__

    return __version__


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
