"""The plugin side the TensorRT code needs: declared fields (from `pipeline.plugin_specs`) and
loading the plugin library exactly once.

`pipeline.plugin_specs` (the plugin engineer's module) is imported lazily so that this package
imports even where it is absent; `declared_plugins()` adapts its `SPECS` to one shape.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.errors import UserError

log = logging.getLogger(__name__)

# Only used while `pipeline.plugin_specs` is missing from the checkout (design §2); the module
# is the source of truth.
_DESCRIBED = {
    "CaitTalkingHeadsAttention": {
        "version": "1",
        "namespace": "",
        "fields": ["num_heads", "scale", "pre_weight", "pre_bias", "post_weight", "post_bias"],
        "types": {
            "num_heads": "int",
            "scale": "float",
            "pre_weight": "floats",
            "pre_bias": "floats",
            "post_weight": "floats",
            "post_bias": "floats",
        },
        "lengths": {"pre_weight": "H*H", "pre_bias": "H", "post_weight": "H*H", "post_bias": "H"},
    },
    "CaitClassAttention": {
        "version": "1",
        "namespace": "",
        "fields": ["num_heads", "scale"],
        "types": {"num_heads": "int", "scale": "float"},
        "lengths": {},
    },
}


def declared_plugins() -> dict[str, dict]:
    """{plugin: {"version", "namespace", "fields": [names], "types": {name: "int"|"float"|
    "floats"}, "lengths": {name: int | "H" | "H*H"}}} from `pipeline.plugin_specs.SPECS`."""
    try:
        from pipeline.plugin_specs import SPECS
    except ImportError:
        log.warning(
            "pipeline.plugin_specs not found: checking plugin nodes against the fields "
            "described in design §2"
        )
        return {k: dict(v) for k, v in _DESCRIBED.items()}
    return {
        name: {
            "version": spec.version,
            "namespace": spec.namespace,
            "fields": [f.name for f in spec.fields],
            "types": {f.name: f.type for f in spec.fields},
            "lengths": {f.name: f.length for f in spec.fields if f.type == "floats"},
        }
        for name, spec in SPECS.items()
    }


_LOADED: dict[str, str] = {}  # realpath → how it was loaded


def load_plugin_library(path: str | os.PathLike) -> Path:
    """dlopen the plugin library once per process (a second load by another mechanism fails,
    design §3), through Polygraphy's `LoadPlugins` loader (ctypes.CDLL)."""
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
