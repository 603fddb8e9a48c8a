"""Test-wide settings. Full-size presets are opt-in (CAIT_FULL=1); GPU tests skip with a reason."""

import os
import sys
from pathlib import Path

import pytest

from pipeline.cpu import apply_cpu_defaults

apply_cpu_defaults()  # same Paddle threading as the CLI, before any test imports Paddle

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    full = os.environ.get("CAIT_FULL") == "1" or "full" in (config.getoption("-m") or "")
    skip_full = pytest.mark.skip(reason="full-size preset: opt in with CAIT_FULL=1 or -m full")
    for item in items:
        if "full" in item.keywords and not full:
            item.add_marker(skip_full)


def run_cli(*argv, cwd=None, env=None):
    """Run `python -m pipeline …` in a subprocess (exit codes and stderr are part of the contract)."""
    import subprocess

    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, argv)],
        cwd=cwd or ROOT,
        env=e,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory):
    """`exported_onnx(name, depth=1)` → path of a verified export, made once per session."""
    from pipeline.presets import get_preset
    from pipeline.stages.export import export

    cache = {}

    def get(name, depth=1):
        if (name, depth) not in cache:
            out = tmp_path_factory.mktemp(f"{name}_d{depth}")
            cache[name, depth] = export(get_preset(name, depth=depth), out)
        return cache[name, depth]

    return get
