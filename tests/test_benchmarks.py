"""The benchmark tools whose output lands in BENCHMARKS.md (timings are never
asserted): the sweep table's renderer and the compiled-kernel check of
``benchmarks.pallas_gpu``, run here in interpret mode."""

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
def test_tune_settings_reach_the_kernels(monkeypatch, config):
    """A tuning setting is what the next traced kernel uses (module constants)."""
    from jcnn import conv_pallas, conv_pallas_depthwise

    for name in ("TILE_POSITIONS", "TILE_CHANNELS", "CHUNK_CHANNELS", "NUM_WARPS",
                 "NUM_STAGES"):
        monkeypatch.setattr(conv_pallas, name, getattr(conv_pallas, name))
    monkeypatch.setattr(conv_pallas_depthwise, "TILE_POSITIONS",
                        conv_pallas_depthwise.TILE_POSITIONS)
    pallas_gpu._set(config)
    assert conv_pallas.flat_tiles(4096, 256, 256) == {
        "positions": config[0], "out": config[1], "chunk": config[2]}
    assert (conv_pallas.NUM_WARPS, conv_pallas.NUM_STAGES) == config[3:]
    assert conv_pallas_depthwise.TILE_POSITIONS == config[0]
