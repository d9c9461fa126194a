"""The fused Pallas kernels — forward (jcnn/conv_pallas.py), dW
(jcnn/conv_pallas_wgrad.py), depthwise forward and dW
(jcnn/conv_pallas_depthwise.py), dX by stride phase on the forward kernel: in
Pallas' interpret mode on the CPU against lax, on Hypothesis shapes (strides,
dilation, asymmetric padding, groups, depthwise with multipliers, odd sizes,
bf16); forced through ``jcnn.conv`` with the article's backward; lowered for
CUDA (Triton) here, without a GPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import conv_cases
from hypothesis import given, settings
from oracles import lax_conv

import jcnn
from jcnn import conv_plan
from jcnn.conv_arrangements import FORWARD, INPUT_GRAD, WEIGHT_GRAD, Geometry
from jcnn.conv_pallas import forward_pallas, tiles, unravel
from jcnn.conv_pallas_wgrad import batch_shares

PALLAS = jcnn.ConvPlan("pallas", "pallas", "pallas")


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


@settings(max_examples=max(25, settings.default.max_examples // 8))
@given(conv_cases(nd=2, max_kernel=4, batch=(1, 3)))
def test_weight_gradient_kernel_matches_lax(case):
    """dW = the correlation of X with dZ, reduced on the kernel (depthwise layers
    on the depthwise kernel), against lax's own VJP."""
    x, w, _ = case.arrays()
    geo = _geometry(case)

    def ref(w):
        return lax_conv(x, w, stride=case.stride, padding=case.pads, dilation=case.dilation,
                        groups=case.groups)

    y, vjp = jax.vjp(ref, w)
    ct = np.random.default_rng(case.seed).standard_normal(y.shape)
    got = jax.jit(lambda x, g: WEIGHT_GRAD["pallas"](x, g, geo, block=0, precision=None,
                                                     platforms=("cpu",)))(x, ct)
    assert got.shape == w.shape and got.dtype == w.dtype
    np.testing.assert_allclose(got, vjp(ct)[0], rtol=1e-10, atol=1e-10)


@settings(max_examples=max(10, settings.default.max_examples // 20))
@given(conv_cases(nd=1, max_kernel=4))
def test_one_dimensional_convolutions_are_lifted(case):
    x, w, _ = case.arrays()
    geo = _geometry(case)
    got = forward_pallas(x, w, geo, block=0, precision=None, platforms=("cpu",))
    want, vjp = jax.vjp(lambda w: lax_conv(x, w, stride=case.stride, padding=case.pads,
                                           dilation=case.dilation, groups=case.groups), w)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)
    ct = np.random.default_rng(case.seed).standard_normal(want.shape)
    dw = WEIGHT_GRAD["pallas"](x, ct, geo, block=0, precision=None, platforms=("cpu",))
    np.testing.assert_allclose(dw, vjp(ct)[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_kernels_match_lax(multiplier, stride):
    """A depthwise layer wider than one channel tile (70 channels: two tiles of
    64), so the channel padding and the per-multiplier interleaving are
    exercised; forward, dX (phases on the depthwise forward kernel) and dW."""
    rng = np.random.default_rng(3)
    c = 70
    x = rng.standard_normal((2, 9, 8, c))
    w = rng.standard_normal((3, 3, 1, c * multiplier))
    pads = ((1, 1), (0, 2))
    geo = Geometry(x.shape, w.shape, (stride, stride), pads, (1, 1), c)
    assert geo.depthwise
    y, vjp = jax.vjp(lambda x, w: lax_conv(x, w, stride=stride, padding=pads, groups=c), x, w)
    ct = rng.standard_normal(y.shape)
    want_dx, want_dw = vjp(ct)
    kw = dict(block=0, precision=None, platforms=("cpu",))
    np.testing.assert_allclose(FORWARD["pallas"](x, w, geo, **kw), y, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(INPUT_GRAD["pallas"](ct, w, geo, **kw), want_dx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(WEIGHT_GRAD["pallas"](x, ct, geo, **kw), want_dw, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_accumulates_in_f32(dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 40)), dtype)  # two input-channel chunks
    w = jnp.asarray(rng.standard_normal((3, 3, 40, 20)), dtype)
    geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    y = forward_pallas(x, w, geo, block=0, precision=None, platforms=("cpu",))
    assert y.dtype == jnp.float32  # forward arrangements return the accumulation dtype
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want, vjp = jax.vjp(lambda w: lax_conv(x64, w, padding=1), w64)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    # dW sums 2·9·7 products per weight: in f32 it is exact to f32 rounding, then
    # rounded once to the weights' dtype (a bf16/f16 accumulator would be far off)
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(want.shape), dtype)
    dw = WEIGHT_GRAD["pallas"](x, ct, geo, block=0, precision=None, platforms=("cpu",))
    assert dw.dtype == dtype
    want_dw = vjp(ct.astype(np.float64))[0]
    ulp = 2.0 ** -8 if dtype == jnp.bfloat16 else 2.0 ** -11
    np.testing.assert_allclose(dw.astype(np.float64), want_dw, rtol=ulp, atol=1e-3)


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


@pytest.mark.parametrize("part", ["forward", "weight_grad"])
@pytest.mark.parametrize("w_shape, groups", [((3, 3, 64, 64), 1), ((3, 3, 1, 64), 64)])
def test_lowers_for_cuda_as_one_triton_kernel(part, w_shape, groups):
    geo = Geometry((64, 56, 56, 64), w_shape, (1, 1), ((1, 1), (1, 1)), (1, 1), groups)
    x = jax.ShapeDtypeStruct(geo.x_shape, jnp.bfloat16)
    if part == "forward":
        other = jax.ShapeDtypeStruct(geo.w_shape, jnp.bfloat16)
        fn = FORWARD["pallas"]
    else:
        other = jax.ShapeDtypeStruct((*geo.x_shape[:-1], geo.c_out), jnp.bfloat16)
        fn = WEIGHT_GRAD["pallas"]
    text = jax.jit(lambda a, b: fn(a, b, geo, block=0, precision=None, platforms=("cuda",))
                   ).trace(x, other).lower(lowering_platforms=("cuda",)).as_text()
    assert "triton" in text and text.count("custom_call") == 1
    # the sums run inside the kernel, not in XLA
    assert "stablehlo.dot_general" not in text and "stablehlo.convolution" not in text


def test_unravel_and_batch_shares():
    index = jnp.arange(2 * 3 * 5, dtype=jnp.int32)
    got = unravel(index, (None, 3, 5))
    want = np.unravel_index(np.arange(30), (2, 3, 5))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert batch_shares(64, 18) == 8 and batch_shares(7, 18) == 7 and batch_shares(64, 4096) == 1
    assert all(64 % batch_shares(64, p) == 0 for p in range(1, 300))


def test_tiles_are_powers_of_two_and_big_enough_for_triton():
    for out_h, out_w, c_in, c_out in [(56, 56, 64, 64), (7, 7, 512, 512), (1, 3, 1, 1),
                                      (28, 28, 3, 1000), (100, 1, 7, 9)]:
        t = tiles(out_h, out_w, c_in, c_out)
        assert all(v & (v - 1) == 0 for v in t.values()), t
        assert t["rows"] * t["cols"] >= 16 and t["out"] >= 16 and t["chunk"] >= 16


@pytest.mark.parametrize("x_shape,w_shape,stride,groups,dtype,platform,picked", [
    ((64, 56, 56, 64), (3, 3, 64, 64), 1, 1, jnp.float32, "cuda", ("pallas", "pallas")),
    ((8, 28, 28, 32), (3, 3, 32, 48), 1, 1, jnp.float32, "cuda", ("pallas", "pallas")),
    ((8, 28, 28, 16), (3, 3, 16, 32), 1, 1, jnp.float32, "cuda", ("gather", "pallas")),
    ((8, 28, 28, 64), (3, 3, 64, 128), 1, 1, jnp.float32, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (3, 3, 64, 64), 1, 1, jnp.bfloat16, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (3, 3, 64, 64), 2, 1, jnp.float32, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (5, 5, 64, 64), 1, 1, jnp.float32, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (3, 3, 32, 64), 1, 2, jnp.float32, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (3, 3, 64, 64), 1, 1, jnp.float32, "rocm", ("gather", "scatter")),
    ((1024, 128, 128, 64), (3, 3, 64, 64), 1, 1, jnp.float32, "cuda", ("gather", "scatter")),
    ((64, 56, 56, 64), (3, 3, 64, 64), 1, 1, jnp.float32, "tpu", ("gather", "scatter")),
    ((16, 56, 56, 64), (3, 3, 64, 64), 1, 1, jnp.float32, "cpu", ("gather", "scatter")),
])
def test_the_plan_picks_it_only_where_it_was_measured_to_win(x_shape, w_shape, stride, groups,
                                                              dtype, platform, picked):
    """CUDA, f32, 3×3 at stride 1, no groups: the forward when it contracts 32–64
    input channels into at most 64, dX when it contracts 32–64 output channels
    into at most 64 input channels; nowhere else."""
    geo = Geometry(x_shape, w_shape, (stride,) * 2, ((1, 1),) * 2, (1, 1), groups)
    got = conv_plan.plan(geo, dtype, platform)
    assert (got.forward, got.input_grad) == picked
    assert got.weight_grad != "pallas"


def test_three_dims_are_refused():
    assert "pallas" in FORWARD
    with pytest.raises(ValueError, match="conv: the 'pallas' forward takes 1-D and 2-D"):
        jcnn.conv(jnp.ones((1, 4, 4, 4, 1)), jnp.ones((2, 2, 2, 1, 1)), plan=PALLAS)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_over_one_chunk_loop_over_offsets_and_chunks(stride):
    """80 input and 72 output channels: two input-channel chunks (the one-loop form of
    the kernel) and two output-channel tiles, against lax; forward and dX (dX
    contracts the 72 channels), at stride 1 (flattened image) and 2 (strided tiles)."""
    rng = np.random.default_rng(stride)
    x, w = rng.standard_normal((1, 7, 6, 80)), rng.standard_normal((3, 3, 80, 72))
    kw = dict(stride=stride, padding=((1, 0), (1, 1)))
    y, vjp = jax.vjp(lambda x, w: lax_conv(x, w, **kw), x, w)
    ct = rng.standard_normal(y.shape)
    got, got_vjp = jax.vjp(lambda x, w: jcnn.conv(x, w, plan=PALLAS, **kw), x, w)
    np.testing.assert_allclose(got, y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_vjp(ct)[0], vjp(ct)[0], rtol=1e-10, atol=1e-10)


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
