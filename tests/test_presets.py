"""The preset table: counts equal the reference implementation's, and the Paddle model agrees."""

import json

import pytest

from pipeline.errors import UserError
from pipeline.presets import PRESETS, get_preset

# Parameter counts of the reference implementations (timm / PaddleViT).
REFERENCE_PARAMS = {
    "cait_xxs_24": 11_956_264,
    "cait_xxs_36": 17_299_720,
    "cait_s_24": 46_916_200,
    "cait_xxs_24_384": 12_029_224,
    "cait_xxs_36_384": 17_372_680,
    "cait_xs_24_384": 26_670_088,
    "cait_s_24_384": 47_062_120,
    "cait_s_36_384": 68_366_632,
    "cait_m_36_384": 271_221_352,
    "cait_m_48_448": 356_460_520,
}
ZOO = [n for n, p in PRESETS.items() if p.zoo]


def test_zoo_is_the_ten_presets():
    assert sorted(ZOO) == sorted(REFERENCE_PARAMS)


@pytest.mark.parametrize("name", ZOO)
def test_derived_param_count_matches_reference(name):
    assert PRESETS[name].params == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", ["cait_xxs_24", "cait_xs_24_384", "cait_digits"])
def test_paddle_model_has_exactly_the_table_count(name):
    import numpy as np

    from pipeline.models import build_model

    p = PRESETS[name]
    model = build_model(p)
    assert sum(int(np.prod(t.shape)) for t in model.parameters()) == p.params


def test_gflops_match_timm_gmacs():
    # timm's published GMACs (×2 = GFLOPs): xxs24_224 2.53, s36_384 48.0, m48_448 329.4
    assert PRESETS["cait_xxs_24"].gflops == pytest.approx(5.06, rel=0.01)
    assert PRESETS["cait_s_36_384"].gflops == pytest.approx(96.0, rel=0.01)
    assert PRESETS["cait_m_48_448"].gflops == pytest.approx(658.8, rel=0.01)


def test_layerscale_init_per_preset():
    small = {n for n in ZOO if PRESETS[n].init_scale == 1e-6}
    assert small == {"cait_s_36_384", "cait_m_36_384", "cait_m_48_448"}
    assert all(PRESETS[n].init_scale == 1e-5 for n in set(ZOO) - small)
    assert all(PRESETS[n].head_dim == 48 for n in ZOO)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(UserError, match="did you mean cait_xxs_24"):
        get_preset("cait_xxs24")


def test_models_json_cli(cli):
    r = cli("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["name"]: row["params"] for row in rows} == REFERENCE_PARAMS
    for key in (
        "img_size",
        "patch_size",
        "embed_dim",
        "depth",
        "num_heads",
        "init_scale",
        "gflops",
    ):
        assert all(key in row for row in rows)


def test_models_table_cli(cli):
    r = cli("models")
    assert r.returncode == 0
    assert "cait_m_48_448" in r.stdout and "356,460,520" in r.stdout
