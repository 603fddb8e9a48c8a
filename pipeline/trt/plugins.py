"""Loading the plugin library exactly once per process.

Loading the same library twice by two mechanisms (ctypes and trtexec's --staticPlugins in one
process, say) registers the creators twice and fails.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UserError

_LOADED: dict[str, str] = {}  # realpath → how it was loaded


def load_plugin_library(path: str | os.PathLike) -> Path:
    """dlopen the plugin library once per process, through Polygraphy's `LoadPlugins` loader
    (ctypes.CDLL, which the creators' REGISTER_TENSORRT_PLUGIN needs nothing more than)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"plugin library {p} not found; build it with CMake (target "
            "cait_trt_plugins, see docs/jetson.md) or pass --plugins"
        )
    real = os.path.realpath(p)
    if real not in _LOADED:
        from polygraphy.backend.trt import LoadPlugins

        try:
            LoadPlugins(plugins=[real])()
        except OSError as e:
            raise UserError(f"cannot load plugin library {p}: {e}") from None
        _LOADED[real] = "ctypes"
    return Path(real)
