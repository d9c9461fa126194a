"""conv / conv1d / conv2d / conv3d / convolve2d against independent oracles."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import ConvCase, conv_cases, finite_difference_check
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from oracles import lax_conv

import jcnn
from jcnn import conv_arrangements as arr
from jcnn import conv_plan, convolution
from jcnn.conv_geometry import Geometry


def _geometry(case, x_shape=None):
    return Geometry(tuple(x_shape or case.x_shape), tuple(case.w_shape), tuple(case.stride),
                    tuple(map(tuple, case.pads)), tuple(case.dilation), case.groups)


KINDS = {"fwd": "forward", "dx": "input_grad", "dw": "weight_grad"}


def _names(kind, geo, dtype="float64"):
    """The arrangements the registry says fit ``geo`` (the Pallas kernels have their
    own tests: in interpret mode they are too slow for every example here)."""
    return [k for k in arr.supported(KINDS[kind], geo, dtype) if k not in ("pallas", "mosaic")]


def _forward_names(geo):
    return _names("fwd", geo)


def _every_arrangement(kind, geo, a, b, block=0):
    """``{name: result}`` of every registered arrangement of ``kind`` (fwd/dx/dw)."""
    kw = dict(block=block, precision=None, platforms=conv_plan.PLATFORMS,
              conv=convolution._nested)
    table = arr.TABLES[KINDS[kind]]
    return {k: table[k](a, b, geo, **kw) for k in _names(kind, geo, a.dtype)}


def _plain(case, x, w, b):
    """The windowed-sum forward with the custom rule bypassed (plain autodiff)."""
    geo = _geometry(case, x.shape)
    return convolution._forward(x, w, b, geo, None, conv_plan.plans_for(geo, x.dtype))


def _lax(case, x, w, b):
    return lax_conv(x, w, b, stride=case.stride, padding=case.pads, dilation=case.dilation,
                    groups=case.groups)


# Pinned bug classes: (n + 2p − f) mod s ≠ 0; stride > kernel; even kernel + SAME;
# dilation with stride; depthwise; 1×1 kernel; kernel exactly the input size.
_PINNED = [
    ConvCase((2, 7, 7, 2), (3, 3, 2, 3), (2, 2), 0, ((0, 0), (0, 0)), (1, 1), 1, True, 1),
    ConvCase((1, 8, 6, 2), (2, 1, 2, 2), (3, 3), "VALID", ((0, 0), (0, 0)), (1, 1), 1, False, 2),
    ConvCase((1, 6, 5, 1), (4, 2, 1, 2), (1, 1), "SAME", ((1, 2), (0, 1)), (1, 1), 1, True, 3),
    ConvCase((1, 11, 9, 2), (3, 3, 2, 2), (2, 3), 1, ((1, 1), (1, 1)), (2, 3), 1, False, 4),
    ConvCase((2, 6, 6, 4), (3, 3, 1, 8), (2, 1), "SAME", ((0, 1), (1, 1)), (1, 1), 4, True, 5),
    ConvCase((2, 5, 3), (1, 3, 4), (1,), "VALID", ((0, 0),), (1,), 1, True, 6),
    ConvCase((2, 4, 5, 3), (4, 5, 3, 2), (1, 1), "VALID", ((0, 0), (0, 0)), (1, 1), 1, True, 7),
    # lax's VJP with these pads passed to lax aborts XLA (tools/repro_xla_lax_vjp_abort.py)
    ConvCase((1, 1, 4, 2), (5, 2, 2, 2), (2, 2), ((2, 2), (1, 1)), ((2, 2), (1, 1)), (1, 1), 1,
             True, 8),
]


@given(conv_cases())
@example(_PINNED[0]).via("(n + 2p - f) mod s != 0")
@example(_PINNED[1]).via("stride larger than the kernel")
@example(_PINNED[2]).via("even kernel with SAME")
@example(_PINNED[3]).via("dilation with stride")
@example(_PINNED[4]).via("depthwise with a multiplier")
@example(_PINNED[5]).via("1x1 kernel")
@example(_PINNED[6]).via("kernel exactly the input size")
def test_forward_matches_lax(case):
    x, w, b = case.arrays()
    geo = _geometry(case)

    @jax.jit
    def run(x, w, b):
        ours = jcnn.conv(x, w, b, **case.kwargs())
        return ours, _every_arrangement("fwd", geo, x, w), _lax(case, x, w, None)

    got, per_path, expected = run(x, w, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected + (0 if b is None else b), rtol=1e-10, atol=1e-11)
    assert len(per_path) >= 4
    for path, y in per_path.items():  # every arrangement of the windowed sums
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-11, err_msg=path)


@given(conv_cases())
@example(_PINNED[0]).via("(n + 2p - f) mod s != 0")
@example(_PINNED[1]).via("stride larger than the kernel")
@example(_PINNED[3]).via("dilation with stride")
@example(_PINNED[4]).via("depthwise with a multiplier")
@example(_PINNED[7]).via("the shape whose lax VJP aborted XLA (issue 17)")
def test_vjp_matches_lax_and_plain_autodiff(case):
    x, w, b = case.arrays()
    args = (x, w) if b is None else (x, w, b)

    def ours(*a):
        return jcnn.conv(*a, **case.kwargs())

    def ref(*a):
        return _lax(case, *a) if len(a) == 3 else _lax(case, *a, None)

    def plain(*a):  # the same windowed-sum forward, custom rule bypassed
        return _plain(case, a[0], a[1], a[2] if len(a) == 3 else None)

    y_shape = jax.eval_shape(ours, *args).shape
    ct = np.random.default_rng(case.seed + 1).standard_normal(y_shape)
    geo = _geometry(case)

    @jax.jit
    def run(ct, *args):
        vjps = [jax.vjp(fn, *args)[1](ct) for fn in (ours, plain)]
        # every arrangement of the backward's sums, not only the one chosen
        return vjps, _every_arrangement("dx", geo, ct, w), _every_arrangement("dw", geo, x, ct)

    # the oracle runs apart from jcnn's program: a failure of XLA on lax's own
    # gradient then shows as an error of this test, not inside jcnn's computation
    want_lax = jax.jit(lambda ct, *a: jax.vjp(ref, *a)[1](ct))(ct, *args)
    (got, want_plain), dxs, dws = run(ct, *args)
    for name, want in (("lax", want_lax), ("autodiff", want_plain)):
        for label, g, r in zip("xwb", got, want):
            assert g.shape == r.shape
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10,
                                       err_msg=f"d{label} vs {name}")
    assert set(dxs) == set(_names("dx", geo)) and set(dws) == set(_names("dw", geo))
    assert "phases" in dxs
    for path, dx in dxs.items():
        np.testing.assert_allclose(dx, want_lax[0], rtol=1e-10, atol=1e-10, err_msg=path)
    for path, dw in dws.items():
        np.testing.assert_allclose(dw, want_lax[1], rtol=1e-10, atol=1e-10, err_msg=path)


@settings(max_examples=max(20, settings.default.max_examples // 4))  # second order: slow
@given(conv_cases(max_kernel=4, batch=(1, 2)))
def test_second_order_matches_plain_autodiff(case):
    """Reverse-over-reverse (Hessian-vector products) against plain autodiff's.

    The oracle is ``jax.grad`` twice through the same windowed sums with the
    custom rule bypassed.  (lax's own second derivative of a dilated conv
    aborts inside XLA's algebraic simplifier on some of these shapes, so it
    cannot be the oracle here; ``test_hessian_vector_and_jacrev_of_grad``
    checks against lax on a fixed shape.)"""
    x, w, b = case.arrays()
    rng = np.random.default_rng(case.seed + 2)
    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)

    def loss(conv_fn):
        return lambda x, w: jnp.sum(jnp.tanh(conv_fn(x, w, b)))

    ours = loss(lambda x, w, b: jcnn.conv(x, w, b, **case.kwargs()))
    ref = loss(lambda x, w, b: _plain(case, x, w, b))

    @jax.jit
    def hvps(x, w):
        out = []
        for f in (ours, ref):
            g = jax.grad(f, (0, 1))
            out.append(jax.grad(lambda x, w: jnp.vdot(g(x, w)[0], vx)
                                + jnp.vdot(g(x, w)[1], vw), (0, 1))(x, w))
        return out

    (hx, hw), (rx, rw) = hvps(x, w)
    np.testing.assert_allclose(hx, rx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(hw, rw, rtol=1e-9, atol=1e-10)


@settings(max_examples=max(20, settings.default.max_examples // 4))  # second order: slow
@given(conv_cases(max_kernel=3, max_stride=2, max_dilation=2, batch=(1,)))
def test_finite_differences_order_2(case):
    """First and second (reverse-over-reverse) derivatives vs central differences."""
    x, w, b = case.arrays()
    args = (x, w) if b is None else (x, w, b)
    finite_difference_check(lambda *a: jnp.sum(jnp.tanh(jcnn.conv(*a, **case.kwargs()))),
                            args, case.seed)


@pytest.mark.parametrize("case", _PINNED, ids=["mod", "s>f", "even-same", "dil+stride",
                                               "depthwise", "1x1", "full-size", "covers-input"])
def test_check_grads_order_2_reverse(case):
    """jax.test_util.check_grads, order 2, reverse mode, on the pinned bug classes."""
    x, w, b = case.arrays()
    args = (x, w) if b is None else (x, w, b)
    f = jax.jit(lambda *a: jnp.sum(jnp.tanh(jcnn.conv(*a, **case.kwargs()))))
    check_grads(f, args, order=2, modes=["rev"])


def test_hessian_vector_and_jacrev_of_grad():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 5, 2))
    w = rng.standard_normal((3, 3, 2, 2))

    def loss(x, w):
        return jnp.sum(jnp.sin(jcnn.conv(x, w, stride=2, padding="SAME")))

    def ref_loss(x, w):
        return jnp.sum(jnp.sin(lax_conv(x, w, stride=(2, 2), padding=((1, 1), (1, 1)),
                                        dilation=(1, 1), groups=1)))

    h = jax.jacrev(jax.grad(loss))(x, w)
    hr = jax.jacrev(jax.grad(ref_loss))(x, w)
    np.testing.assert_allclose(h, hr, atol=1e-10)
    v = rng.standard_normal(w.shape)
    hvp = jax.grad(lambda w: jnp.vdot(jax.grad(loss, 1)(x, w), v))(w)
    hvp_r = jax.grad(lambda w: jnp.vdot(jax.grad(ref_loss, 1)(x, w), v))(w)
    np.testing.assert_allclose(hvp, hvp_r, atol=1e-10)


def test_forward_mode_is_refused_and_reverse_over_reverse_is_the_way():
    x, w = jnp.ones((1, 4, 4, 1)), jnp.ones((2, 2, 1, 1))
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: jcnn.conv(x, w), (x,), (x,))
    # what the docstring recommends instead: a Jacobian by reverse mode
    jac = jax.jacrev(lambda x: jcnn.conv(x, w))(x)
    assert jac.shape == (1, 3, 3, 1, 1, 4, 4, 1) and float(jac[0, 0, 0, 0, 0, 1, 1, 0]) == 1.0


def test_full_jacobian_matches_lax():
    """Every element of the Jacobian (single-direction checks can miss bugs)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 4, 2))
    w = rng.standard_normal((2, 3, 1, 4))
    kw = dict(stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2), groups=2)
    ours = jax.jacrev(lambda x, w: jcnn.conv(x, w, stride=(2, 1), padding=((1, 0), (0, 2)),
                                             dilation=(1, 2), groups=2), (0, 1))(x, w)
    ref = jax.jacrev(lambda x, w: lax_conv(x, w, **kw), (0, 1))(x, w)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, atol=1e-12)


@pytest.mark.parametrize("nd,fn", [(1, jcnn.conv1d), (2, jcnn.conv2d), (3, jcnn.conv3d)])
def test_rank_specific_aliases(nd, fn):
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, *(6,) * nd, 3))
    w = rng.standard_normal((*(3,) * nd, 3, 4))
    ref = lax_conv(x, w, stride=(2,) * nd, padding=((1, 1),) * nd, dilation=(1,) * nd, groups=1)
    np.testing.assert_allclose(fn(x, w, stride=2, padding=1), ref, atol=1e-12)


def test_four_spatial_dims():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 3, 4, 3, 2))
    w = rng.standard_normal((2, 2, 1, 2, 2, 3))
    ref = lax_conv(x, w, stride=(1,) * 4, padding=((0, 0),) * 4, dilation=(1,) * 4, groups=1)
    np.testing.assert_allclose(jcnn.conv(x, w), ref, atol=1e-12)


def test_jit_and_vmap():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 7, 7, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    f = jax.jit(lambda x, w: jcnn.conv(x, w, stride=2, padding="SAME", precision="highest"))
    batched = jax.vmap(f, in_axes=(0, None))(x, w)
    for i in range(3):
        ref = lax_conv(x[i], w, stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
        np.testing.assert_allclose(batched[i], ref, rtol=1e-5, atol=1e-5)
    g = jax.jit(jax.grad(lambda w: jnp.sum(jax.vmap(f, in_axes=(0, None))(x, w) ** 2)))(w)
    gr = jax.grad(lambda w: sum(jnp.sum(lax_conv(x[i], w, stride=(2, 2), padding=((1, 1),) * 2,
                                                 dilation=(1, 1), groups=1) ** 2)
                                for i in range(3)))(w)
    np.testing.assert_allclose(g, gr, rtol=1e-4)


_TOLERANCE = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2, jnp.float16: 2e-3}


@settings(max_examples=max(20, settings.default.max_examples // 4))  # three dtypes each
@given(case=conv_cases(nd=2, max_kernel=3, batch=(1,)))
def test_low_precision_within_tolerance(case):
    """f32/bf16/f16 values and gradients vs the f64 oracle on the same rounded inputs."""
    x, w, b = case.arrays()
    dtypes = list(_TOLERANCE)

    def rounded(dt, x, w, b):
        return x.astype(dt), w.astype(dt), None if b is None else b.astype(dt)

    @jax.jit
    def run(x, w, b):
        out = []
        for dt in dtypes:
            xl, wl, bl = rounded(dt, x, w, b)
            kw = dict(case.kwargs(), precision="highest")  # f32: no TF32 products on a GPU
            y = jcnn.conv(xl, wl, bl, **kw)
            gx, gw = jax.grad(lambda x, w: jnp.sum(jcnn.conv(x, w, **kw)
                                                   .astype(jnp.float32)), (0, 1))(xl, wl)
            out.append((y, gx, gw))
        return out

    @jax.jit
    def oracle(x, w, b):  # compiled apart from jcnn's program (see test_vjp_matches_lax...)
        out = []
        for dt in dtypes:
            xr, wr, br = (None if a is None else a.astype(jnp.float64)
                          for a in rounded(dt, x, w, b))
            ref = _lax(case, xr, wr, br)
            rx, rw = jax.grad(lambda x, w: jnp.sum(_lax(case, x, w, None)), (0, 1))(xr, wr)
            out.append((ref, rx, rw))
        return out

    results = [tuple(zip(got, want)) for got, want in zip(run(x, w, b), oracle(x, w, b))]
    for dt, pairs in zip(dtypes, results):
        tol = _TOLERANCE[dt]
        for got, ref in pairs:
            assert got.dtype == dt
            err = np.abs(np.asarray(got, np.float64) - np.asarray(ref)).max()
            assert err <= 4 * tol * (1 + np.abs(np.asarray(ref)).max()), (dt, err)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_accumulates_in_f32(dtype):
    """A sum of 1,600 ones is 1,600 — not 256 (bf16) or a saturated f16 partial sum."""
    x = jnp.ones((1, 1, 1600), dtype)  # contraction over 1,600 channels
    w = jnp.ones((1, 1600, 1), dtype)
    assert float(jcnn.conv(x, w)[0, 0, 0]) == 1600.0
    x2 = jnp.ones((1, 40, 40, 1), dtype)  # dw and db sum over 1,600 positions
    w2, b2 = jnp.ones((1, 1, 1, 1), dtype), jnp.ones((1,), dtype)
    gw, gb = jax.grad(lambda w, b: jnp.sum(jcnn.conv(x2, w, b).astype(jnp.float32)),
                      (0, 1))(w2, b2)
    assert float(gw[0, 0, 0, 0]) == 1600.0 and float(gb[0]) == 1600.0
    gx = jax.grad(lambda x: jnp.sum(jcnn.conv(x, w).astype(jnp.float32)))(x)
    assert gx.dtype == dtype and float(gx.sum()) == 1600.0


def test_zero_size_batch():
    x, w, b = jnp.ones((0, 5, 5, 2)), jnp.ones((3, 3, 2, 4)), jnp.ones(4)
    assert jcnn.conv(x, w, b).shape == (0, 3, 3, 4)
    gw, gb = jax.grad(lambda w, b: jnp.sum(jcnn.conv(x, w, b)), (0, 1))(w, b)
    assert gw.shape == w.shape and float(jnp.abs(gw).sum()) == 0.0 and float(gb.sum()) == 0.0


def test_nan_and_inf_stay_in_their_batch_element():
    x = np.random.default_rng(6).standard_normal((3, 6, 6, 2))
    x[1, 2, 3, 0] = np.nan
    x[2, 0, 0, 1] = np.inf
    w = np.random.default_rng(7).standard_normal((3, 3, 2, 2))
    y = jcnn.conv(x, w, padding=1)
    ref = lax_conv(x, w, stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    assert np.isfinite(y[0]).all()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_allclose(y[0], ref[0], atol=1e-12)
    gx = jax.grad(lambda x: jnp.sum(jcnn.conv(x, w, padding=1)[0]))(x)
    assert np.isfinite(gx).all()  # elements 1 and 2 get zero, not NaN, gradient
    assert np.isnan(jcnn.conv(x, w, padding=1)[1]).any()


# ------------------------------------------------------------------ article numbers
def test_article_valid_6x6_with_3x3_gives_4x4():
    assert jcnn.conv(jnp.ones((1, 6, 6, 1)), jnp.ones((3, 3, 1, 1))).shape == (1, 4, 4, 1)
    assert jcnn.output_size(6, 3) == 4


def test_article_3x3_padded_by_1_with_2x2_gives_4x4():
    y = jcnn.conv(jnp.ones((1, 3, 3, 1)), jnp.ones((2, 2, 1, 1)), padding=1)
    assert y.shape == (1, 4, 4, 1)
    # corners see one real pixel, edges two, the centre four
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2, 2, 1], [2, 4, 4, 2],
                                                  [2, 4, 4, 2], [1, 2, 2, 1]])


@pytest.mark.parametrize("n,f,s,p,expected", [(6, 3, 1, 0, 4), (7, 3, 2, 0, 3),
                                              (7, 3, 2, 1, 4), (5, 5, 1, 2, 5),
                                              (32, 7, 2, 3, 16), (10, 4, 3, 1, 3)])
def test_output_size_formula(n, f, s, p, expected):
    assert jcnn.output_size(n, f, stride=s, padding=p) == expected == (n + 2 * p - f) // s + 1


@given(st.integers(1, 30), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3))
def test_same_keeps_size(n, f, s, d):
    y = jax.eval_shape(lambda x, w: jcnn.conv(x, w, stride=s, dilation=d, padding="SAME"),
                       jnp.ones((1, n, 1)), jnp.ones((f, 1, 1)))
    assert y.shape[1] == -(-n // s) == jcnn.output_size(n, f, stride=s, dilation=d,
                                                         padding="SAME")


def test_output_size_pair_and_valid():
    assert jcnn.output_size(5, 2, padding=(0, 1)) == 5
    assert jcnn.output_size(9, 3, padding="valid", dilation=2) == 5
    with pytest.raises(ValueError, match="larger than the padded input"):
        jcnn.output_size(3, 5)


# ------------------------------------------------------------------ convolve2d
def _direct_convolve2d(f, h):
    """The article's formula, G[m,n] = Σ_j Σ_k h[j,k] f[m−j, n−k], as loops (full)."""
    (a, b), (c, d) = f.shape, h.shape
    g = np.zeros((a + c - 1, b + d - 1))
    for m, n, j, k in itertools.product(range(a + c - 1), range(b + d - 1), range(c), range(d)):
        if 0 <= m - j < a and 0 <= n - k < b:
            g[m, n] += h[j, k] * f[m - j, n - k]
    return g


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from(["full", "valid", "same"]), st.integers(0, 1000))
def test_convolve2d_matches_formula_and_scipy(h, w, kh, kw, mode, seed):
    rng = np.random.default_rng(seed)
    image, kernel = rng.standard_normal((h, w)), rng.standard_normal((kh, kw))
    fits = (h >= kh and w >= kw) or (kh >= h and kw >= w)
    if mode == "valid" and not fits:
        with pytest.raises(ValueError, match="valid"):
            jcnn.convolve2d(image, kernel, mode)
        return
    got = jax.jit(jcnn.convolve2d, static_argnums=2)(image, kernel, mode)
    if fits:  # jax.scipy requires one input to contain the other, in every mode
        np.testing.assert_allclose(got, jax.scipy.signal.convolve2d(image, kernel, mode),
                                   atol=1e-12)
    full = _direct_convolve2d(image, kernel)
    if mode == "full":
        want = full
    elif mode == "same":
        r, c = (kh - 1) // 2, (kw - 1) // 2
        want = full[r:r + h, c:c + w]
    else:
        want = full[min(h, kh) - 1:max(h, kh), min(w, kw) - 1:max(w, kw)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_convolve2d_flips_unlike_conv():
    image = jnp.zeros((3, 3)).at[1, 1].set(1.0)
    kernel = jnp.arange(9.0).reshape(3, 3)
    # the impulse response of a true convolution is the kernel itself ...
    np.testing.assert_array_equal(jcnn.convolve2d(image, kernel, "same"), kernel)
    # ... while the layer's cross-correlation gives it rotated by 180°
    corr = jcnn.conv(image[None, :, :, None], kernel[:, :, None, None], padding=1)
    np.testing.assert_array_equal(corr[0, :, :, 0], kernel[::-1, ::-1])


def test_rot180_swaps_channels_per_group():
    w = jnp.arange(2 * 2 * 1 * 4.0).reshape(2, 2, 1, 4)  # groups=2: cig=1, cog=2
    r = jcnn.rot180(w, groups=2)
    assert r.shape == (2, 2, 2, 2)
    # output channel o of group g becomes input channel o%2 of group g, flipped
    for o in range(4):
        g, j = divmod(o, 2)
        np.testing.assert_array_equal(r[:, :, j, g], w[::-1, ::-1, 0, o])


def test_bit_identical_across_runs():
    """The same inputs give bit-identical outputs and gradients, compiled anew each time."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)

    def run():
        f = jax.jit(lambda x, w: jax.value_and_grad(
            lambda x, w: jnp.sum(jnp.tanh(jcnn.conv(x, w, stride=2, padding="SAME"))),
            (0, 1))(x, w))
        (v, (gx, gw)) = f(x, w)
        return np.asarray(v), np.asarray(gx), np.asarray(gw)

    first, second = run(), run()
    jax.clear_caches()
    third = run()
    for a, b, c in zip(first, second, third):
        assert a.tobytes() == b.tobytes() == c.tobytes()


@given(st.integers(1, 3).flatmap(lambda nd: st.tuples(
    st.tuples(*[st.integers(1, 3)] * nd),  # window
    st.tuples(*[st.integers(1, 3)] * nd),  # stride
    st.tuples(*[st.integers(1, 2)] * nd),  # dilation
    st.tuples(*[st.integers(0, 3)] * nd),  # extra input beyond the last window
)), st.integers(0, 2 ** 16))
def test_patches_and_their_transpose(geometry, seed):
    """``patches`` against a loop over positions and offsets; ``scatter_patches``
    against the adjoint identity ⟨patches(x), p⟩ = ⟨x, scatter_patches(p)⟩ and
    a loop that adds every value back where it was read."""
    from jcnn import window as win

    window, stride, dilation, extra = geometry
    out = [2 + e % 2 for e in extra]
    size = [(m - 1) * s + (f - 1) * d + 1 + e
            for m, s, f, d, e in zip(out, stride, window, dilation, extra)]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *size, 3))
    k_total = int(np.prod(window))
    p = rng.standard_normal((2, *out, k_total, 3))

    both = jax.jit(lambda x, p: (win.patches(x, window, out, stride, dilation),
                                 win.scatter_patches(p, window, size, stride, dilation)))
    got, scattered = map(np.asarray, both(x, p))
    want = np.zeros((2, *out, k_total, 3))
    back = np.zeros_like(x)
    for pos in itertools.product(*(range(m) for m in out)):
        for i, k in enumerate(itertools.product(*(range(f) for f in window))):
            src = tuple(q * s + kk * d for q, s, kk, d in zip(pos, stride, k, dilation))
            want[(slice(None), *pos, i)] = x[(slice(None), *src)]
            back[(slice(None), *src)] += p[(slice(None), *pos, i)]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(scattered, back, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.vdot(got, p), np.vdot(x, scattered), rtol=1e-10)


@pytest.mark.parametrize("regime", ["whole batch", "blocks of 2", "blocks of 1"])
@pytest.mark.parametrize("shape", [
    ((6, 7, 7, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), 1),
    ((4, 9, 8, 4), (3, 2, 2, 6), (2, 3), ((1, 0), (0, 1)), 2),
    ((4, 6, 6, 4), (3, 3, 1, 4), (2, 1), ((1, 1), (1, 1)), 4),
])
def test_batch_blocks(shape, regime):
    """Every block size a plan can give — whole batch, blocks, one example per
    block — forced through ``plan=``, for every arrangement, forward and VJP vs lax."""
    x_shape, w_shape, stride, pads, groups = shape
    n = x_shape[0]
    block = {"whole batch": 0, "blocks of 2": 2, "blocks of 1": 1}[regime]
    rng = np.random.default_rng(len(regime))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    case = ConvCase(x_shape, w_shape, stride, pads, pads, (1, 1), groups, False, 0)
    y_ref, vjp_ref = jax.vjp(lambda x, w: _lax(case, x, w, None), x, w)
    ct = rng.standard_normal(y_ref.shape)
    dx_ref, dw_ref = vjp_ref(ct)
    geo = _geometry(case)
    names = [_forward_names(geo), _names("dx", geo), _names("dw", geo)]
    for i in range(max(map(len, names))):  # every arrangement at least once
        plan = jcnn.ConvPlan(*(ns[i % len(ns)] for ns in names), block)

        @jax.jit
        def fwd_bwd(x, w, ct, plan=plan):
            y, vjp = jax.vjp(lambda x, w: jcnn.conv(x, w, stride=stride, padding=pads,
                                                    groups=groups, plan=plan), x, w)
            return y, *vjp(ct)

        y, dx, dw = fwd_bwd(x, w, ct)
        msg = f"{plan} (batch {n})"
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10, err_msg=msg)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10, err_msg=msg)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-10, err_msg=msg)


@pytest.mark.parametrize("n,per_example,limit,want", [
    (6, 10, 1000, 6), (6, 10, 40, 3), (6, 10, 25, 2), (6, 10, 10, 1), (6, 10, 9, None),
    (7, 10, 60, 1), (0, 10, 100, 1),
])
def test_batch_block_is_the_largest_divisor_that_fits(n, per_example, limit, want):
    assert conv_plan.batch_block(n, per_example, limit) == want
