"""The fused Pallas forward kernel (jcnn/conv_pallas.py): in Pallas' interpret
mode on the CPU against lax, on Hypothesis shapes (strides, dilation,
asymmetric padding, groups, odd sizes, bf16); forced through ``jcnn.conv``
with the article's backward; lowered for CUDA (Triton) here, without a GPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import conv_cases
from hypothesis import given, settings
from oracles import lax_conv

import jcnn
from jcnn import conv_plan
from jcnn.conv_arrangements import FORWARD, INPUT_GRAD, Geometry
from jcnn.conv_pallas import forward_pallas, tiles

PALLAS = jcnn.ConvPlan("pallas", "pallas", "offsets")


def _geometry(case):
    return Geometry(case.x_shape, case.w_shape, case.stride, case.pads, case.dilation,
                    case.groups)


@settings(max_examples=max(25, settings.default.max_examples // 8))
@given(conv_cases(nd=2, max_kernel=4, batch=(1, 2)))
def test_kernel_matches_lax(case):
    x, w, _ = case.arrays()
    geo = _geometry(case)
    got = jax.jit(lambda x, w: forward_pallas(x, w, geo, block=0, precision=None,
                                              platforms=("cpu",)))(x, w)
    want = lax_conv(x, w, stride=case.stride, padding=case.pads, dilation=case.dilation,
                    groups=case.groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)


@settings(max_examples=max(10, settings.default.max_examples // 20))
@given(conv_cases(nd=2, max_kernel=3, batch=(1,)))
def test_input_gradient_kernel_matches_lax(case):
    """dX by stride phase, every phase on the kernel, against lax's own VJP."""
    x, w, _ = case.arrays()
    geo = _geometry(case)

    def ref(x):
        return lax_conv(x, w, stride=case.stride, padding=case.pads, dilation=case.dilation,
                        groups=case.groups)

    y, vjp = jax.vjp(ref, x)
    ct = np.random.default_rng(case.seed).standard_normal(y.shape)
    got = INPUT_GRAD["pallas"](ct, w, geo, block=0, precision=None, platforms=("cpu",))
    np.testing.assert_allclose(got, vjp(ct)[0], rtol=1e-10, atol=1e-10)


@settings(max_examples=max(10, settings.default.max_examples // 20))
@given(conv_cases(nd=1, max_kernel=4))
def test_one_dimensional_convolutions_are_lifted(case):
    x, w, _ = case.arrays()
    geo = _geometry(case)
    got = forward_pallas(x, w, geo, block=0, precision=None, platforms=("cpu",))
    want = lax_conv(x, w, stride=case.stride, padding=case.pads, dilation=case.dilation,
                    groups=case.groups)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_accumulates_in_f32(dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 40)), dtype)  # two input-channel chunks
    w = jnp.asarray(rng.standard_normal((3, 3, 40, 20)), dtype)
    geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    y = forward_pallas(x, w, geo, block=0, precision=None, platforms=("cpu",))
    assert y.dtype == jnp.float32  # forward arrangements return the accumulation dtype
    want = lax_conv(x.astype(np.float64), w.astype(np.float64), padding=1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)


def test_forced_through_conv_with_the_articles_backward():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((3, 3, 3, 4))
    kw = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    got = jax.grad(loss(lambda x, w: jcnn.conv(x, w, plan=PALLAS, **kw)), (0, 1))(x, w)
    want = jax.grad(loss(lambda x, w: lax_conv(x, w, **kw)), (0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_lowers_for_cuda_as_a_triton_kernel():
    geo = Geometry((64, 56, 56, 64), (3, 3, 64, 64), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    x = jax.ShapeDtypeStruct(geo.x_shape, jnp.bfloat16)
    w = jax.ShapeDtypeStruct(geo.w_shape, jnp.bfloat16)
    text = jax.jit(lambda x, w: forward_pallas(x, w, geo, block=0, precision=None,
                                               platforms=("cuda",))).trace(x, w).lower(
        lowering_platforms=("cuda",)).as_text()
    assert "triton" in text and text.count("custom_call") == 1
    assert "stablehlo.dot_general" not in text  # the sums run inside the kernel, not in XLA


def test_tiles_are_powers_of_two_and_big_enough_for_triton():
    for out_h, out_w, c_in, c_out in [(56, 56, 64, 64), (7, 7, 512, 512), (1, 3, 1, 1),
                                      (28, 28, 3, 1000), (100, 1, 7, 9)]:
        t = tiles(out_h, out_w, c_in, c_out)
        assert all(v & (v - 1) == 0 for v in t.values()), t
        assert t["rows"] * t["cols"] >= 16 and t["out"] >= 16 and t["chunk"] >= 16


def test_the_plan_never_picks_it_and_three_dims_are_refused():
    for platform in conv_plan.PLATFORMS:
        geo = Geometry((8, 28, 28, 16), (3, 3, 16, 32), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        assert conv_plan.plan(geo, jnp.float32, platform).forward != "pallas"
    assert "pallas" in FORWARD
    with pytest.raises(ValueError, match="conv: the 'pallas' forward takes 1-D and 2-D"):
        jcnn.conv(jnp.ones((1, 4, 4, 4, 1)), jnp.ones((2, 2, 2, 1, 1)), plan=PALLAS)


def test_forced_plan_lowers_the_kernel_for_cuda_and_interprets_on_cpu():
    x = jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 4, 8), jnp.float32)
    f = jax.jit(lambda x, w: jcnn.conv(x, w, padding=1, plan=PALLAS))
    cuda = f.trace(x, w).lower(lowering_platforms=("cuda",)).as_text()
    cpu = f.trace(x, w).lower(lowering_platforms=("cpu",)).as_text()
    assert "triton" in cuda and "triton" not in cpu


def test_phases_input_gradient_is_in_the_vjp_property_and_refuses_nothing():
    """The XLA form of the phase split ('phases') is exercised against lax by
    test_conv.py's VJP property; here: a stride-3 dilation-2 layer whose taps miss
    a phase entirely (those rows get zero gradient)."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 10, 3)), rng.standard_normal((2, 3, 2))
    geo = Geometry(x.shape, w.shape, (3,), ((0, 0),), (3,), 1)
    y, vjp = jax.vjp(lambda x: lax_conv(x, w, stride=3, dilation=3), x)
    ct = rng.standard_normal(y.shape)
    got = INPUT_GRAD["phases"](ct, w, geo, block=0, precision=None, platforms=("cpu",))
    np.testing.assert_allclose(got, vjp(ct)[0], rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(got)[0, 1::3] == 0) and np.all(np.asarray(got)[0, 2::3] == 0)
    with pytest.raises(ValueError, match="conv: the 'pallas' input_grad takes 1-D and 2-D"):
        jcnn.conv(jnp.ones((1, 4, 4, 4, 1)), jnp.ones((2, 2, 2, 1, 1)),
                  plan=jcnn.ConvPlan("gather", "pallas", "offsets"))
