"""The fused Pallas kernels, called directly — forward (jcnn/conv_pallas.py), dX by
stride phase (jcnn/conv_pallas_dgrad.py), dW (jcnn/conv_pallas_wgrad.py),
depthwise forward, dX and dW (jcnn/conv_pallas_depthwise.py) — in Pallas'
interpret mode on the CPU against lax and lax's VJP, on Hypothesis shapes
(strides, dilation, asymmetric padding, groups, depthwise with multipliers, odd
sizes, bf16/f16); the stride-phase walk against a brute-force enumeration of
the taps; forced through ``jcnn.conv``; lowered for CUDA (Triton) here, without a
GPU: one kernel per pass and no pad, slice, scatter or concatenation around it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import conv_cases
from cross_lowering import lowered_text
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracles import lax_conv

import jcnn
from jcnn._pallas_base import TileSizes, as_2d, forward_walk, input_grad_walk, shares, unravel
from jcnn.conv_geometry import Geometry
from jcnn.conv_pallas import forward_pallas
from jcnn.conv_pallas_depthwise import forward_pallas_depthwise, weight_grad_pallas_depthwise
from jcnn.conv_pallas_dgrad import input_grad_pallas
from jcnn.conv_pallas_wgrad import weight_grad_pallas

PALLAS = jcnn.ConvPlan("pallas", "pallas", "pallas")
KW = dict(precision=None, interpret=True)


def _geometry(case):
    return Geometry(case.x_shape, case.w_shape, case.stride, case.pads, case.dilation,
                    case.groups)


def forward(x, w, geo, **kw):
    """The forward kernel for ``geo``: the depthwise one for depthwise layers."""
    fn = forward_pallas_depthwise if geo.depthwise else forward_pallas
    return fn(x, w, geo, **kw)


def weight_grad(x, g, geo, **kw):
    fn = weight_grad_pallas_depthwise if geo.depthwise else weight_grad_pallas
    return fn(x, g, geo, **kw)


def _vjp_case(case):
    """The case's arrays, lax's output, a cotangent and lax's ``(dX, dW)``."""
    x, w, _ = case.arrays()

    def ref(x, w):
        return lax_conv(x, w, stride=case.stride, padding=case.pads, dilation=case.dilation,
                        groups=case.groups)

    y, vjp = jax.vjp(ref, x, w)
    ct = np.random.default_rng(case.seed).standard_normal(y.shape)
    return x, w, y, ct, vjp(ct)


@settings(max_examples=max(25, settings.default.max_examples // 8))
@given(conv_cases(nd=2, max_kernel=4, batch=(1, 2)))
def test_forward_kernels_match_lax(case):
    x, w, y, _, _ = _vjp_case(case)
    geo = _geometry(case)
    got = jax.jit(lambda x, w: forward(x, w, geo, **KW))(x, w)
    assert got.shape == y.shape and got.dtype == y.dtype
    np.testing.assert_allclose(got, y, rtol=1e-10, atol=1e-11)


@settings(max_examples=max(10, settings.default.max_examples // 20))
@given(conv_cases(nd=2, max_kernel=3, batch=(1,)))
def test_input_gradient_kernel_matches_lax(case):
    """dX by stride phase, every phase on a forward kernel, against lax's own VJP."""
    x, w, _, ct, (want, _) = _vjp_case(case)
    got = input_grad_pallas(ct, w, _geometry(case), **KW)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=max(25, settings.default.max_examples // 8))
@given(conv_cases(nd=2, max_kernel=4, batch=(1, 3)))
def test_weight_gradient_kernels_match_lax(case):
    """dW = the correlation of X with dZ, reduced on the kernel, against lax's VJP."""
    x, w, _, ct, (_, want) = _vjp_case(case)
    geo = _geometry(case)
    got = jax.jit(lambda x, g: weight_grad(x, g, geo, **KW))(x, ct)
    assert got.shape == w.shape and got.dtype == w.dtype
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=max(10, settings.default.max_examples // 20))
@given(conv_cases(nd=1, max_kernel=4))
def test_one_dimensional_convolutions_are_lifted(case):
    x, w, y, ct, (want_dx, want_dw) = _vjp_case(case)
    geo = _geometry(case)
    np.testing.assert_allclose(forward(x, w, geo, **KW), y, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(input_grad_pallas(ct, w, geo, **KW), want_dx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(weight_grad(x, ct, geo, **KW), want_dw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_kernels_match_lax(multiplier, stride):
    """A depthwise layer wider than one channel tile (70 channels: two tiles of
    64), so the channel tails and the multipliers' interleaving are exercised;
    forward, dX and dW."""
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
    np.testing.assert_allclose(forward_pallas_depthwise(x, w, geo, **KW), y, rtol=1e-10,
                               atol=1e-11)
    np.testing.assert_allclose(input_grad_pallas(ct, w, geo, **KW), want_dx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(weight_grad_pallas_depthwise(x, ct, geo, **KW), want_dw,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_over_one_chunk_and_one_tile(stride):
    """80 input and 72 output channels: two input-channel chunks and two
    output-channel tiles (and channel tails), forward, dX (contracting the 72)
    and dW, at stride 1 and 2."""
    rng = np.random.default_rng(stride)
    x, w = rng.standard_normal((1, 7, 6, 80)), rng.standard_normal((3, 3, 80, 72))
    pads = ((1, 0), (1, 1))
    geo = Geometry(x.shape, w.shape, (stride, stride), pads, (1, 1), 1)
    y, vjp = jax.vjp(lambda x, w: lax_conv(x, w, stride=stride, padding=pads), x, w)
    ct = rng.standard_normal(y.shape)
    want_dx, want_dw = vjp(ct)
    np.testing.assert_allclose(forward_pallas(x, w, geo, **KW), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(input_grad_pallas(ct, w, geo, **KW), want_dx, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(weight_grad_pallas(x, ct, geo, **KW), want_dw, rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("groups", [1, 40])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_accumulates_in_f32(dtype, groups):
    """bf16/f16 operands (dense: two input-channel chunks; depthwise): the forward
    returns f32 sums, dX and dW the operands' dtype rounded once from f32 sums
    (a bf16/f16 accumulator would be far off)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 7, 40)), dtype)
    w = jnp.asarray(rng.standard_normal((3, 3, 40 // groups, 20 if groups == 1 else 40)), dtype)
    geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), groups)
    y = forward(x, w, geo, **KW)
    assert y.dtype == jnp.float32
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want, vjp = jax.vjp(lambda x, w: lax_conv(x, w, padding=1, groups=groups), x64, w64)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(want.shape), dtype)
    want_dx, want_dw = vjp(ct.astype(np.float64))
    dx, dw = input_grad_pallas(ct, w, geo, **KW), weight_grad(x, ct, geo, **KW)
    assert dx.dtype == dw.dtype == dtype
    ulp = 2.0 ** -8 if dtype == jnp.bfloat16 else 2.0 ** -11
    np.testing.assert_allclose(dx.astype(np.float64), want_dx, rtol=ulp, atol=1e-3)
    np.testing.assert_allclose(dw.astype(np.float64), want_dw, rtol=ulp, atol=1e-3)


def test_tile_sizes_reach_the_kernels():
    """Two tilings of one layer (one and several programs, chunks, tiles) give the
    same sums; an unknown tile field is refused by the dataclass."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 9, 10, 40)), rng.standard_normal((3, 3, 40, 24))
    geo = Geometry(x.shape, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    small = TileSizes(positions=16, out=16, chunk=16)
    a = forward_pallas(x, w, geo, **KW, tile=small)
    b = forward_pallas(x, w, geo, **KW, tile=TileSizes(positions=256, out=64, chunk=64))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    ct = rng.standard_normal(a.shape)
    np.testing.assert_allclose(weight_grad_pallas(x, ct, geo, **KW, tile=small),
                               weight_grad_pallas(x, ct, geo, **KW), rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError):
        TileSizes(rows=3)


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


GLUE = ("stablehlo.pad", "stablehlo.slice", "stablehlo.scatter", "stablehlo.concatenate",
        "dynamic_update_slice", "stablehlo.dot_general", "stablehlo.convolution")


def _cuda_text(fn, *shapes):
    return lowered_text(fn, *(jax.ShapeDtypeStruct(s, jnp.bfloat16) for s in shapes))


@pytest.mark.parametrize("w_shape, groups, stride", [
    ((3, 3, 64, 64), 1, 1), ((3, 3, 64, 64), 1, 2), ((3, 3, 32, 64), 2, 2),
    ((3, 3, 1, 64), 64, 1), ((3, 3, 1, 64), 64, 2), ((7, 7, 64, 64), 1, 2)])
def test_each_pass_lowers_for_cuda_as_one_triton_kernel_without_glue(w_shape, groups, stride):
    """Forward, dX (every stride phase in the one call) and dW: one Triton call
    each on the unpadded arrays, no XLA pass that pads, crops, scatters or
    concatenates, and the sums inside the kernel; dW adds at most its few
    shares' partial sums afterwards (a reduce, no other op)."""
    geo = Geometry((64, 56, 56, 64), w_shape, (stride, stride), ((1, 1), (1, 1)), (1, 1),
                   groups)
    kw = dict(precision=None, interpret=False)
    ct = (64, *geo.out_shape, 64)
    texts = [_cuda_text(lambda x, w: forward(x, w, geo, **kw), geo.x_shape, w_shape),
             _cuda_text(lambda g, w: input_grad_pallas(g, w, geo, **kw), ct, w_shape),
             _cuda_text(lambda x, g: weight_grad(x, g, geo, **kw), geo.x_shape, ct)]
    for text in texts:
        assert "triton" in text and text.count("custom_call") == 1
        assert not [op for op in GLUE if op in text], [op for op in GLUE if op in text]


def test_unravel_and_shares():
    index = jnp.arange(2 * 3 * 5, dtype=jnp.int32)
    got = unravel(index, (None, 3, 5))
    want = np.unravel_index(np.arange(30), (2, 3, 5))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert shares(1568, 9) == 29 and shares(1568, 4096) == 1 and shares(2, 1) == 2


@settings(max_examples=max(25, settings.default.max_examples // 4))
@given(st.integers(1, 9), st.integers(1, 5), st.integers(1, 4), st.integers(1, 3),
       st.integers(0, 4), st.integers(0, 4))
def test_walks_visit_exactly_the_taps_of_the_sum(n, f, s, d, lo, hi):
    """Forward: output p reads input p·s + i·d − lo for every tap i.  Input
    gradient: input y collects, once each, every (tap i, cotangent row p) with
    p·s + i·d − lo = y — a brute-force enumeration — and each phase covers its
    rows y0, y0 + s, … exactly once."""
    m = (n + lo + hi - (f - 1) * d - 1) // s + 1
    assume(m >= 1)
    fw = forward_walk(n, f, s, d, lo, m)
    assert [(fw.a * p + fw.e0[0] + fw.b * i, i) for p in range(m) for i in range(f)] == \
        [(p * s + i * d - lo, i) for p in range(m) for i in range(f)]
    walk = input_grad_walk(n, f, s, d, lo, m)
    got = {y: [] for y in range(n)}
    for y0, e0, i0, taps, extent in zip(walk.y0, walk.e0, walk.i0, walk.taps, walk.extent):
        for t in range(extent):
            y = y0 + walk.s * t
            got[y].append(sorted((i0 + walk.step * u, walk.a * t + e0 + walk.b * u)
                                 for u in range(taps)))
    want = {y: [sorted((i, p) for i in range(f) for p in range(m) if p * s + i * d - lo == y)]
            for y in range(n)}
    # every row in exactly one phase; out-of-range cotangent rows are masked in the kernel
    assert {y: [[(i, p) for i, p in taps if 0 <= p < m] for taps in v] for y, v in got.items()} \
        == want


def test_three_dims_are_refused():
    geo = Geometry((1, 4, 4, 4, 1), (2, 2, 2, 1, 1), (1,) * 3, ((0, 0),) * 3, (1,) * 3, 1)
    with pytest.raises(ValueError, match="conv: the 'pallas' arrangements take 1-D and 2-D"):
        as_2d(None, None, geo)
    with pytest.raises(ValueError, match="take 1-D and 2-D convolutions, got 3 spatial"):
        forward_pallas(jnp.ones(geo.x_shape), jnp.ones(geo.w_shape), geo, **KW)
