"""The Mosaic GPU (Hopper) forward kernel (jcnn/conv_mosaic.py): its checks of the geometry
and dtypes everywhere; where jax has Pallas' GPU interpret mode (jax ≥ 0.11), its values
against lax (f32 products of the same bf16 operands at HIGHEST precision) on small layers;
where jax has none (the CI's 0.10), the NotImplementedError that says so; and, where the
CUDA plugin is installed, the kernel compiled for an H200 without a GPU (XLA's deviceless
compile: Mosaic's lowering, TMA and ``wgmma`` included)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from oracles import lax_conv

from jcnn.conv_geometry import Geometry
from jcnn.conv_mosaic import forward_mosaic, mosaic_tiles

KW = dict(precision=None, interpret=True)


def _has_gpu_interpret() -> bool:
    from jax.experimental.pallas import mosaic_gpu

    return hasattr(mosaic_gpu, "InterpretGPUParams")


def _case(x_shape, w_shape, pads, dilation=None, seed=0):
    nd = len(w_shape) - 2
    kx, kw = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, x_shape, jnp.float32).astype(jnp.bfloat16)
    w = jax.random.normal(kw, w_shape, jnp.float32).astype(jnp.bfloat16)
    dilation = dilation or (1,) * nd
    return x, w, Geometry(x_shape, w_shape, (1,) * nd, pads, dilation, 1)


def _reference(x, w, geo):
    """lax on the same bf16 values in f32 (bf16 products are exact in f32)."""
    return lax_conv(x.astype(jnp.float32), w.astype(jnp.float32), stride=geo.stride,
                    padding=geo.pads, dilation=geo.dilation)


def test_tiles_fit_wgmma():
    """A box of rows × cols positions (powers of two, cols ≥ 8) whose size is a multiple
    of 64 (one warpgroup's M) covering small images whole; out and chunk powers of two
    from 16 to 64."""
    for out_h, out_w, c_in, c_out in [(1, 9, 1, 1), (7, 7, 3, 10), (56, 56, 64, 64),
                                      (28, 28, 100, 300), (112, 224, 512, 512)]:
        t = mosaic_tiles(out_h, out_w, c_in, c_out)
        m = t["rows"] * t["cols"]
        assert m % 64 == 0 and t["cols"] >= 8, t
        for key in ("rows", "cols", "out", "chunk"):
            assert t[key] & (t[key] - 1) == 0, t
        assert 16 <= t["out"] <= 64 and 16 <= t["chunk"] <= 64, t
        if out_h * out_w <= 64:
            assert t["rows"] >= out_h and t["cols"] >= out_w, t
        assert t["stages"] >= 2


@pytest.mark.parametrize("stride, groups", [((2, 2), 1), ((1, 1), 2)])
def test_rejects_strides_and_groups(stride, groups):
    x = jnp.zeros((1, 6, 6, 16), jnp.bfloat16)
    w = jnp.zeros((3, 3, 16 // groups, 16), jnp.bfloat16)
    geo = Geometry(x.shape, w.shape, stride, ((1, 1), (1, 1)), (1, 1), groups)
    with pytest.raises(ValueError, match=r"forward_mosaic: stride 1 and one group only"):
        forward_mosaic(x, w, geo, **KW)


def test_rejects_f32():
    x, w = jnp.zeros((1, 6, 6, 16), jnp.float32), jnp.zeros((3, 3, 16, 16), jnp.float32)
    geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    with pytest.raises(TypeError, match=r"forward_mosaic: bfloat16 or float16.*float32"):
        forward_mosaic(x, w, geo, **KW)


def test_interpret_needs_gpu_interpret_mode():
    if _has_gpu_interpret():
        pytest.skip("this jax has Pallas' GPU interpret mode (checked against lax below)")
    x, w, geo = _case((1, 6, 6, 16), (3, 3, 16, 16), ((1, 1), (1, 1)))
    with pytest.raises(NotImplementedError, match=r"forward_mosaic: interpret=True needs"):
        forward_mosaic(x, w, geo, **KW)


# one chunk; channels padded (3 → 16) and an odd width; two chunks of 64 with
# asymmetric padding and dilation; 1-D
CASES = [((2, 6, 6, 16), (3, 3, 16, 16), ((1, 1), (1, 1)), None),
         ((1, 5, 7, 3), (3, 2, 3, 24), ((1, 1), (0, 1)), None),
         ((1, 4, 5, 80), (2, 3, 80, 16), ((0, 1), (2, 1)), (2, 2)),
         ((2, 9, 16), (3, 16, 16), ((1, 1),), None)]


@pytest.mark.parametrize("x_shape, w_shape, pads, dilation", CASES)
def test_matches_lax_in_gpu_interpret_mode(x_shape, w_shape, pads, dilation):
    if not _has_gpu_interpret():
        pytest.skip(f"jax {jax.__version__} has no Pallas GPU interpret mode (jax ≥ 0.11)")
    x, w, geo = _case(x_shape, w_shape, pads, dilation)
    y = forward_mosaic(x, w, geo, **KW)
    ref = _reference(x, w, geo)
    assert y.dtype == jnp.float32 and y.shape == ref.shape
    np.testing.assert_allclose(np.asarray(y), np.asarray(ref), rtol=1e-5, atol=1e-4)


_COMPILE = """
import json, sys
import jax, jax.numpy as jnp
jax.config.update("jax_platforms", "cpu")
from jax.experimental import topologies
from jax.sharding import AbstractDevice, AbstractMesh, AxisType, use_abstract_mesh
from benchmarks.gpu_offline import H200_TARGET
from jcnn.conv_geometry import Geometry
from jcnn.conv_mosaic import forward_mosaic

topo = topologies.get_topology_desc(platform="cuda", target_config=H200_TARGET, topology="1x1x1")
sh = jax.sharding.SingleDeviceSharding(topo.devices[0])
x = jax.ShapeDtypeStruct((2, 14, 14, 64), jnp.bfloat16, sharding=sh)
w = jax.ShapeDtypeStruct((3, 3, 64, 128), jnp.bfloat16, sharding=sh)
geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
fwd = jax.jit(lambda x, w: forward_mosaic(x, w, geo, precision=None, interpret=False))
dev = AbstractDevice(device_kind="NVIDIA H200", num_cores=132, platform="cuda")
with use_abstract_mesh(AbstractMesh((1,), ("x",), (AxisType.Explicit,), abstract_device=dev)):
    hlo = fwd.trace(x, w).lower().compile().as_text()
print("HLO " + json.dumps({"mosaic": hlo.count('custom_call_target="mosaic_gpu'),
                           "triton": hlo.count("triton"), "wgmma": hlo.count("wgmma.mma_async"),
                           "out": "f32[2,14,14,128]" in hlo}))
"""


def test_compiles_for_h200_offline():
    """Deviceless compile for an H200 (in a child process: the CUDA topology needs
    ``jax_platforms=cpu`` before jax starts): the forward is one Mosaic GPU custom call
    holding ``wgmma`` instructions, between the pad and the cut, and no Triton kernel."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("jax_cuda12_plugin")
    if tuple(int(v) for v in jax.__version__.split(".")[:2]) < (0, 11):
        pytest.skip(f"deviceless CUDA compiles need jax >= 0.11, not {jax.__version__}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _COMPILE], cwd=root, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=root))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("HLO ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    found = json.loads(lines[-1][4:])
    assert found == {"mosaic": 1, "triton": 0, "wgmma": found["wgmma"], "out": True}, found
    assert found["wgmma"] >= 1, found
