"""The benchmark tools whose output lands in BENCHMARKS.md (timings are never
asserted): the sweep table's renderer and the compiled-kernel check of
``benchmarks.pallas_gpu``, run here in interpret mode."""

import numpy as np
import pytest

from benchmarks import arrangements, pallas_gpu


def test_render_sorts_each_part_and_bolds_the_fastest():
    res = [{"name": "L", "dtype": "float32",
            "ms": {"lax fwd": 1.0, "lax dx": 2.0, "lax dw": 3.0, "fwd gather": 0.5,
                   "fwd pallas": 0.25, "dx scatter": 0.75, "dw offsets": 2.0, "dw pallas": 4.5}},
           {"name": "M", "dtype": "bfloat16",
            "ms": {"lax fwd": 1.0, "lax dx": 1.0, "lax dw": 1.0, "fwd gather": 1.0,
                   "dx scatter": 1.0, "dw offsets": 1.0}}]
    lines = arrangements.render(res).splitlines()
    assert lines[2] == ("| L | 1.000 / 2.000 / 3.000 | **pallas 0.250**, gather 0.500 | "
                        "**scatter 0.750** | **offsets 2.000**, pallas 4.500 |")
    assert lines[3].startswith("| M (bfloat16) | 1.000 / 1.000 / 1.000 |")


CASES = [((1, 6, 7, 3), (3, 3, 3, 4), 1, "SAME", 1, 1, "float32"),
         ((1, 7, 6, 4), (3, 3, 2, 4), 2, "SAME", 1, 2, "float32")]


def test_pallas_check_passes_here_and_catches_a_wrong_kernel(monkeypatch, capsys):
    monkeypatch.setattr(pallas_gpu, "CHECK_CASES", CASES)
    assert pallas_gpu.check() == 0
    assert "check: 2/2 cases ok" in capsys.readouterr().out
    real = pallas_gpu.lax_conv
    # a reference 1 % off stands for a kernel 1 % off
    monkeypatch.setattr(pallas_gpu, "lax_conv", lambda *a, **k: real(*a, **k) * 1.01)
    assert pallas_gpu.check() == 2


@pytest.mark.parametrize("config", pallas_gpu.CONFIGS[:2])
@pytest.mark.parametrize("groups", [1, 4])
def test_tune_settings_reach_the_kernels(config, groups):
    """A tuning setting is a TileSizes passed to the kernels (depthwise or not);
    run here in interpret mode, they compute lax's sums with it."""
    import jax
    from oracles import lax_conv

    from jcnn.conv_geometry import Geometry

    geo = Geometry((1, 5, 6, 4), (3, 3, 4 // groups, 4), (1, 1), ((1, 1), (1, 1)), (1, 1),
                   groups)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(geo.x_shape), rng.standard_normal(geo.w_shape)
    y, vjp = jax.vjp(lambda x, w: lax_conv(x, w, padding=1, groups=groups), x, w)
    g = rng.standard_normal(y.shape)
    got = pallas_gpu.kernels(geo, config, interpret=True)
    want_dx, want_dw = vjp(g)
    np.testing.assert_allclose(got["fwd"](x, w, g), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["dx"](x, w, g), want_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["dw"](x, w, g), want_dw, rtol=1e-10, atol=1e-10)
    assert pallas_gpu.tag(config) == f"{config.positions}/{config.out}/{config.chunk}/" \
                                     f"{config.num_warps}/{config.num_stages}"
