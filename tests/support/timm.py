"""Make timm importable in the test environment (test-only; never used by `pipeline/`).

timm imports torchvision at import time (data transforms, `FrozenBatchNorm2d`), but nothing on
the CaiT model path uses it. PyPI's torchvision wheels are built against the CUDA build of torch:
with the CPU torch these machines install (`torch==2.13.0`, a local file) their compiled ops
fail to register and `import torchvision` raises. Pulling CUDA torch (several GB, and it would
replace the CPU build) only to satisfy an unused import is not worth it, so when the real
torchvision cannot be imported we register a stand-in module tree whose every attribute is an
inert placeholder class. timm's CaiT code, which the peer-parity tests compare against, is the
real one; if torchvision is installed and works, it is used as is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(
            "torchvision stand-in: timm tried to use torchvision, which these "
            "tests do not install (see tests/support/timm.py)"
        )


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(name, (), {})


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = _StandInModule(spec.name)
        mod.__path__ = []
        if spec.name == "torchvision":
            mod.__version__ = "0.0+stand-in"
        return mod

    def exec_module(self, module):
        pass


def import_timm():
    """Import timm, with the torchvision stand-in only if the real torchvision is unusable."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StandInFinder())
    return importlib.import_module("timm")


# ---- timm → ONNX (users bring their own ONNX: the fuse passes must match this graph too) -------


def timm_model_name(name: str) -> str:
    """Our preset name (`cait_xxs_24_384`) → timm's (`cait_xxs24_384`); timm names pass through."""
    parts = name.split("_")
    if len(parts) >= 3 and parts[0] == "cait" and parts[2].isdigit():
        size = parts[3] if len(parts) > 3 else "224"
        return f"cait_{parts[1]}{parts[2]}_{size}"
    return name


def export_timm_onnx(
    model_name: str,
    path,
    depth: int | None = None,
    *,
    seed: int = 0,
    gamma: float | None = None,
    dynamic_batch: bool = True,
    opset: int = 17,
    batch: int = 1,
):
    """Export timm's CaiT (random init) with the legacy TorchScript exporter; returns the path.

    `depth` reduces the number of talking-heads blocks (CI); `gamma`, when given, sets every
    LayerScale γ to that value so that the attention branches move the logits measurably (timm's
    1e-5 init hides wiring errors below any logit tolerance). The graph differs from
    paddle2onnx's on purpose: Gather instead of Slice+Squeeze, Gemm for the class
    token's q, SDPA with √scale on q and kᵀ, no Identity nodes.
    """
    from pathlib import Path

    import torch

    timm = import_timm()
    kwargs = {"pretrained": False}
    if depth is not None:
        kwargs["depth"] = depth
    torch.manual_seed(seed)
    model = timm.create_model(timm_model_name(model_name), **kwargs).eval()
    if gamma is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("gamma_1", "gamma_2")):
                    p.fill_(gamma)
    size = model.patch_embed.img_size[0]
    x = torch.randn(batch, 3, size, size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    return path
