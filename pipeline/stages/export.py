"""Export stage: Paddle CaiT → `model.onnx` via `paddle.jit.save` + paddle2onnx, checked by ORT.

Why paddle2onnx (not a hand-written exporter): it is Paddle's official ONNX path and what users
of Paddle Inference already trust. Two traps (measured with paddle2onnx 2.1.0) are handled here:
- paddle2onnx forces `POLYGRAPHY_AUTOINSTALL_DEPS=1` before running Polygraphy's constant folding,
  which could pip-install packages behind the user's back, and that folding is what drives
  cait_m_48_448 to 13 GB. We pass `optimize_tool=None`, keep Polygraphy's auto-install off, and
  leave constant folding to the fuse stage's sanitize pass.
- paddle2onnx accepts opsets 7–21 and aborts the process (SIGABRT) on 22+, so the opset is
  validated before the call; TensorRT 10.3 (Jetson) parses 9–20, and our passes rely on the
  opset-13 forms of Squeeze/Unsqueeze/Split, hence the 13–20 window.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.artifacts import (
    EXPORTED,
    PADDLE_DIR,
    StageRecord,
    ensure_writable_dir,
    finish,
    onnx_hash,
    reuse,
    save_onnx,
    sha256_file,
)
from pipeline.errors import UserError
from pipeline.numerics import PARITY_BATCHES, PARITY_TOL, compare, sample_images
from pipeline.onnx_io import ort_session
from pipeline.presets import Preset
from pipeline.weights import checkpoint_path

log = logging.getLogger(__name__)

OPSET_MIN, OPSET_MAX = 13, 20


def validate_opset(opset: int) -> int:
    if not OPSET_MIN <= opset <= OPSET_MAX:
        raise UserError(
            f"--opset {opset} is out of range: use {OPSET_MIN}–{OPSET_MAX} "
            f"(TensorRT 10.3 on Jetson parses opsets up to 20)"
        )
    return opset


@contextlib.contextmanager
def _no_polygraphy_autoinstall():
    saved = os.environ.get("POLYGRAPHY_AUTOINSTALL_DEPS")
    try:
        import polygraphy.config

        polygraphy.config.AUTOINSTALL_DEPS = False
    except ImportError:
        pass
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("POLYGRAPHY_AUTOINSTALL_DEPS", None)
        else:
            os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = saved


@contextlib.contextmanager
def _captured_native_output():
    """paddle2onnx logs from C++ straight to fds 1/2 (temp paths, banners): keep them in a file
    and show them only when the conversion fails or with --verbose."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _jit_save(model, preset: Preset, workdir: Path) -> tuple[Path, Path]:
    import paddle

    spec = paddle.static.InputSpec(
        [None, preset.in_chans, preset.img_size, preset.img_size], "float32", "image"
    )
    prefix = workdir / "inference"
    paddle.jit.save(model, str(prefix), input_spec=[spec])
    program = next(
        p for p in (prefix.with_suffix(".json"), prefix.with_suffix(".pdmodel")) if p.exists()
    )
    return program, prefix.with_suffix(".pdiparams")


def _paddle_to_onnx(program: Path, params: Path, onnx_path: Path, opset: int) -> None:
    import paddle2onnx

    with _no_polygraphy_autoinstall(), _captured_native_output():
        paddle2onnx.export(
            str(program),
            str(params),
            save_file=str(onnx_path),
            opset_version=opset,
            auto_upgrade_opset=False,
            enable_onnx_checker=True,
            enable_optimize=True,
            optimize_tool=None,
            verbose=False,
        )
    if not onnx_path.exists():
        raise UserError(
            f"paddle2onnx wrote no model from {program.name} (opset {opset}); re-run with --verbose"
        )


def _name_io(onnx_path: Path, dst: Path) -> None:
    """Stable graph I/O: `image` (batch, 3, S, S) → `logits` (batch, classes)."""
    import onnx

    model = onnx.load(str(onnx_path))
    g = model.graph
    renames = {g.input[0].name: "image", g.output[0].name: "logits"}
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for vi, new in ((g.input[0], "image"), (g.output[0], "logits")):
        vi.name = new
        dim0 = vi.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = "batch"
    save_onnx(model, dst)


def _publish(staged: Path, dst: Path) -> None:
    """Move a verified model (and its external data, first) into place."""
    data = staged.with_name(staged.name + ".data")
    if data.exists():
        os.replace(data, dst.with_name(data.name))
    os.replace(staged, dst)


def reference_logits(model, preset: Preset, batches=PARITY_BATCHES, seed: int = 0) -> dict:
    """{batch: (input, Paddle logits)} on real-looking inputs. Under no_grad: otherwise autograd
    keeps every block's activations (tens of GB for cait_m_48_448 at batch 3)."""
    import paddle

    refs = {}
    with paddle.no_grad():
        for b in batches:
            x = sample_images(b, preset.img_size, seed=seed + b, channels=preset.in_chans)
            refs[b] = (x, model(paddle.to_tensor(x)).numpy())
    return refs


def onnx_parity(onnx_path: Path, refs: dict) -> dict:
    """ONNX Runtime against the stored Paddle logits, per batch size."""
    sess = ort_session(onnx_path)
    return {
        f"batch{b}": compare(ref, sess.run(["logits"], {"image": x})[0])
        for b, (x, ref) in refs.items()
    }


def export(
    preset: Preset,
    out_dir: str | Path,
    *,
    weights: str | None = None,
    opset: int = 17,
    seed: int = 0,
    tol: float = PARITY_TOL,
    force: bool = False,
) -> StageRecord:
    """Stage: preset (+weights) → `out_dir/model.onnx`, verified against Paddle."""
    from pipeline.models import load_model  # Paddle: imported only when the stage runs

    validate_opset(opset)
    out_dir = Path(out_dir)
    dst = out_dir / EXPORTED
    inputs = {"weights": sha256_file(checkpoint_path(weights)) if weights else f"random:{seed}"}
    settings = {"preset": preset.as_dict(), "opset": opset}
    fresh = reuse(out_dir, "export", inputs, settings, {EXPORTED: dst}, force)
    if fresh:
        return fresh

    t0 = time.perf_counter()
    model, provenance = load_model(preset, weights, seed)
    ensure_writable_dir(out_dir)  # after the weights are known good: no empty folder on bad input
    paddle_dir = out_dir / PADDLE_DIR
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as work:
        work = Path(work)
        refs = reference_logits(model, preset, seed=seed)
        program, params = _jit_save(model, preset, work)
        del model  # the big presets need the memory for paddle2onnx
        gc.collect()
        raw = work / "raw.onnx"
        _paddle_to_onnx(program, params, raw, opset)
        staged = work / "onnx" / dst.name  # final file names, so external data stays valid
        _name_io(raw, staged)
        raw.unlink()
        figures = onnx_parity(staged, refs)
        worst = max(f["max_abs"] for f in figures.values())
        if not worst <= tol:
            raise UserError(
                f"export parity failed for {preset.name}: max |Δlogit| "
                f"{worst:.3g} > {tol:g} between Paddle and ONNX Runtime"
            )
        _publish(staged, dst)
        # Keep the Paddle inference program: Paddle Inference benchmarks and bisecting use it.
        if paddle_dir.exists():
            shutil.rmtree(paddle_dir)
        shutil.copytree(work, paddle_dir, ignore=shutil.ignore_patterns("*.onnx", "onnx"))
        paddle_dir.chmod(0o755)  # copytree keeps TemporaryDirectory's private 0700
    seconds = time.perf_counter() - t0
    log.info(
        "export: %s (opset %d) — parity max |Δlogit| %.2e at batch %s (≤ %g) in %.1f s",
        dst,
        opset,
        worst,
        "/".join(str(b) for b in PARITY_BATCHES),
        tol,
        seconds,
    )
    return finish(
        out_dir,
        "export",
        {
            "inputs": inputs,
            "settings": settings,
            "weights": provenance,
            "outputs": {EXPORTED: onnx_hash(dst)},
            "parity": figures,
            "tolerance": tol,
            "seconds": round(seconds, 1),
        },
        {EXPORTED: dst},
    )
