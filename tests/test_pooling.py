"""max_pool / avg_pool / global pools against lax.reduce_window and loop oracles."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import PoolCase, finite_difference_check, pool_cases
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from oracles import lax_max_pool, lax_sum_pool

import jcnn


def _tie_free(case):
    """A permuted range: no two elements equal, so lax's gradient is unambiguous."""
    rng = np.random.default_rng(case.seed)
    size = int(np.prod(case.x_shape))
    return rng.permutation(size).reshape(case.x_shape).astype(np.float64) / size


def _kw(case):
    return dict(stride=case.stride, padding=case.padding)


_OVERLAP = PoolCase((2, 7, 6, 2), (3, 3), (1, 2), ((1, 1), (1, 0)), ((1, 1), (1, 0)), 11)
_PAD_1D = PoolCase((1, 5, 3), (4,), (3,), ((2, 2),), ((2, 2),), 12)


@given(pool_cases())
@example(_OVERLAP).via("overlapping windows with padding")
@example(_PAD_1D).via("padding of half the window on both sides")
def test_pools_match_lax_values_and_gradients(case):
    x = _tie_free(case)
    ct = np.random.default_rng(case.seed + 1).standard_normal(
        jax.eval_shape(lambda x: jcnn.max_pool(x, case.window, **_kw(case)), x).shape)
    size = float(np.prod(case.window))

    @jax.jit
    def run(x, ct):
        out = []
        for ours, ref in (
            (lambda x: jcnn.max_pool(x, case.window, **_kw(case)),
             lambda x: lax_max_pool(x, case.window, case.stride, case.pads)),
            (lambda x: jcnn.avg_pool(x, case.window, **_kw(case)),
             lambda x: lax_sum_pool(x, case.window, case.stride, case.pads) / size),
        ):
            y, vjp = jax.vjp(ours, x)
            yr, vjpr = jax.vjp(ref, x)
            out.append((y, yr, vjp(ct)[0], vjpr(ct)[0]))
        return out

    for y, yr, g, gr in run(x, ct):
        np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g, gr, rtol=1e-12, atol=1e-14)


def _first_max_oracle(x, window, stride, pads, out_shape):
    """Loop oracle for the tie rule: each window's cotangent (here 1) to its first max."""
    n, *sizes, c = x.shape
    grad = np.zeros_like(x)
    for b, ch in itertools.product(range(n), range(c)):
        for p in itertools.product(*(range(m) for m in out_shape)):
            best, where = None, None
            for k in itertools.product(*(range(f) for f in window)):
                idx = [pi * s + ki - lo for pi, s, ki, (lo, _) in zip(p, stride, k, pads)]
                if all(0 <= i < size for i, size in zip(idx, sizes)):
                    v = x[(b, *idx, ch)]
                    if best is None or v > best:
                        best, where = v, idx
            grad[(b, *where, ch)] += 1.0
    return grad


@given(pool_cases(), st.booleans())
@example(PoolCase((1, 4, 4, 1), (2, 2), (1, 1), "VALID", ((0, 0), (0, 0)), 0), False)
def test_max_pool_ties_go_to_first_max_and_conserve_mass(case, ceil_mode):
    # small integers: many ties
    x = np.random.default_rng(case.seed).integers(0, 3, case.x_shape).astype(np.float64)
    if case.seed % 5 == 0:
        x[:] = 1.0  # every element tied
    f = jax.jit(lambda x: jcnn.max_pool(x, case.window, ceil_mode=ceil_mode, **_kw(case)))
    y, vjp = jax.vjp(f, x)
    (g,) = vjp(np.ones(y.shape))
    assert g.sum() == y.size  # every window sends down exactly its cotangent
    pads_total = _ceil_pads(case, y.shape[1:-1])
    want = _first_max_oracle(x, case.window, case.stride, pads_total, y.shape[1:-1])
    np.testing.assert_array_equal(g, want)


def _ceil_pads(case, out_shape):
    return [(lo, hi) for (lo, hi) in case.pads]


def _avg_oracle(x, window, stride, pads, ceil_mode, count_include_pad):
    """PyTorch's avg_pool rule written as loops (divisor and ceil_mode included)."""
    n, *sizes, c = x.shape
    outs = []
    for size, f, s, (lo, hi) in zip(sizes, window, stride, pads):
        span = size + lo + hi - f
        m = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (m - 1) * s >= size + lo:
            m -= 1
        outs.append(m)
    y = np.zeros((n, *outs, c))
    for p in itertools.product(*(range(m) for m in outs)):
        total, real, declared = 0.0, 0, 0
        for k in itertools.product(*(range(f) for f in window)):
            idx = [pi * s + ki - lo for pi, s, ki, (lo, _) in zip(p, stride, k, pads)]
            if all(-lo <= i < size + hi for i, size, (lo, hi) in zip(idx, sizes, pads)):
                declared += 1
            if all(0 <= i < size for i, size in zip(idx, sizes)):
                real += 1
                total = total + x[(slice(None), *idx, slice(None))]
        y[(slice(None), *p, slice(None))] = total / (declared if count_include_pad else real)
    return y


@given(pool_cases(), st.booleans(), st.booleans())
@example(PoolCase((1, 5, 5, 1), (2, 2), (2, 2), 1, ((1, 1), (1, 1)), 0), True, False)
@example(PoolCase((1, 6, 1), (3,), (2,), 1, ((1, 1),), 1), True, True)
def test_avg_pool_divisor_padding_and_ceil_mode(case, ceil_mode, count_include_pad):
    x = np.random.default_rng(case.seed).standard_normal(case.x_shape)

    def f(x):
        return jcnn.avg_pool(x, case.window, ceil_mode=ceil_mode,
                             count_include_pad=count_include_pad, **_kw(case))

    y = jax.jit(f)(x)
    np.testing.assert_allclose(y, _avg_oracle(x, case.window, case.stride, case.pads,
                                              ceil_mode, count_include_pad), rtol=1e-12)
    # the backward is the transpose of the forward: <f(x), ct> == <x, f^T(ct)>
    rng = np.random.default_rng(case.seed + 1)
    ct, x2 = rng.standard_normal(y.shape), rng.standard_normal(x.shape)
    g = jax.jit(lambda x, ct: jax.vjp(f, x)[1](ct)[0])(x2, ct)
    np.testing.assert_allclose(np.vdot(f(x2), ct), np.vdot(x2, g), rtol=1e-10, atol=1e-12)
    # and spreads each cotangent evenly: a unit cotangent on one window gives 1/divisor
    one = np.zeros(y.shape)
    one[(0,) * y.ndim] = 1.0
    g1 = jax.vjp(f, x)[1](one)[0]
    nonzero = g1[g1 != 0]
    assert np.allclose(nonzero, nonzero[0])  # evenly, 1/divisor each
    ones = _avg_oracle(np.ones(x.shape), case.window, case.stride, case.pads, ceil_mode,
                       count_include_pad)  # = (real elements) / divisor per window
    np.testing.assert_allclose(g1.sum(), ones[(0,) * y.ndim], rtol=1e-12)


@given(pool_cases(), st.booleans())
def test_max_pool_ceil_mode_matches_loop_oracle(case, ceil_mode):
    x = _tie_free(case)
    y = jax.jit(lambda x: jcnn.max_pool(x, case.window, ceil_mode=ceil_mode, **_kw(case)))(x)
    # max of the real elements in each window == avg oracle's shape, max instead of mean
    n, *sizes, c = x.shape
    assert y.shape[1:-1] == _avg_oracle(x[:1, ..., :1], case.window, case.stride, case.pads,
                                        ceil_mode, True).shape[1:-1]
    for p in itertools.product(*(range(m) for m in y.shape[1:-1])):
        vals = []
        for k in itertools.product(*(range(f) for f in case.window)):
            idx = [pi * s + ki - lo for pi, s, ki, (lo, _) in
                   zip(p, case.stride, k, case.pads)]
            if all(0 <= i < size for i, size in zip(idx, sizes)):
                vals.append(x[(slice(None), *idx, slice(None))])
        np.testing.assert_array_equal(y[(slice(None), *p, slice(None))], np.max(vals, 0))


@settings(max_examples=max(20, settings.default.max_examples // 4))  # second order: slow
@given(pool_cases())
def test_pools_second_order_reverse(case):
    """First and second order derivatives of both pools vs central differences."""
    x = _tie_free(case)  # gaps of 1/size between values: eps=1e-5 never flips a max
    for pool in (jcnn.max_pool, jcnn.avg_pool):
        finite_difference_check(
            lambda x, pool=pool: jnp.sum(jnp.sin(3 * pool(x, case.window, **_kw(case)))),
            (x,), case.seed, eps=1e-6)


@pytest.mark.parametrize("pool", [jcnn.max_pool, jcnn.avg_pool])
@pytest.mark.parametrize("case", [_OVERLAP, _PAD_1D])
def test_pools_check_grads_order_2(pool, case):
    x = _tie_free(case)
    f = jax.jit(lambda x: jnp.sum(jnp.sin(pool(x, case.window, **_kw(case)))))
    check_grads(f, (x,), order=2, modes=["rev"])


def test_max_pool_nan_window_outputs_nan_and_routes_to_first_nan():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan
    x[0, 1, 1, 0] = np.nan
    y, vjp = jax.vjp(lambda x: jcnn.max_pool2d(x, 2), x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 0, 1, 0]) and np.isfinite(y[0, 1]).all()
    (g,) = vjp(np.ones(y.shape))
    assert g.sum() == 4 and g[0, 1, 0, 0] == 1 and g[0, 1, 1, 0] == 0


def test_max_pool_infinities():
    x = np.full((2, 4, 4, 1), -np.inf)
    x[1] = np.random.default_rng(0).standard_normal((4, 4, 1))
    x[1, 0, 0, 0] = np.inf
    y, vjp = jax.vjp(lambda x: jcnn.max_pool2d(x, 2, padding=1), x)
    assert np.all(y[0] == -np.inf) and y[1, 0, 0, 0] == np.inf
    (g,) = vjp(np.ones(y.shape))
    assert np.isfinite(g).all() and g[0].sum() == y[0].size and g[1].sum() == y[1].size
    # an all -inf window sends its gradient to its first real element, never the padding
    assert g[0, 0, 0, 0] == 1


def test_overlapping_windows_accumulate():
    x = jnp.array([[0.0, 5.0, 1.0, 0.0]]).reshape(1, 4, 1)
    g = jax.grad(lambda x: jnp.sum(jcnn.max_pool1d(x, 2, stride=1)))(x)
    np.testing.assert_array_equal(g[0, :, 0], [0, 2, 1, 0])


def test_mask_of_maxima_article_example():
    """The article's picture: a 4×4 input, 2×2 windows, the max of each receives dA."""
    x = jnp.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4.0]]).reshape(1, 4, 4, 1)
    y, vjp = jax.vjp(lambda x: jcnn.max_pool2d(x, 2), x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[6, 8], [3, 4]])
    (g,) = vjp(jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1))
    np.testing.assert_array_equal(g[0, :, :, 0], [[0, 0, 0, 0], [0, 1, 0, 2],
                                                 [3, 0, 0, 0], [0, 0, 0, 4]])


@pytest.mark.parametrize("pool,ref", [(jcnn.global_avg_pool, np.mean),
                                      (jcnn.global_max_pool, np.max)])
@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 4, 3, 2), (1, 2, 3, 4, 5)])
def test_global_pools(pool, ref, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(pool(x), ref(x.reshape(shape[0], -1, shape[-1]), axis=1),
                               rtol=1e-12)
    g = jax.grad(lambda x: jnp.sum(pool(x)))(x)
    assert np.allclose(g.reshape(shape[0], -1, shape[-1]).sum(1), 1.0)


def test_global_max_routes_ties_and_nans_as_the_windowed_max_pool():
    """The global pools reduce the flattened positions; their first-max rule (ties,
    NaN, all −inf) must be the windowed max pool's over one whole-image window."""
    x = np.random.default_rng(2).integers(0, 3, (3, 4, 5, 2)).astype(np.float64)
    x[1, 2, 3, 0] = np.nan
    x[2, :, :, 1] = -np.inf
    g = np.random.default_rng(3).standard_normal((3, 2))
    y, vjp = jax.vjp(jcnn.global_max_pool, x)
    y_w, vjp_w = jax.vjp(lambda x: jcnn.max_pool2d(x, (4, 5))[:, 0, 0, :], x)
    np.testing.assert_array_equal(y, y_w)
    np.testing.assert_array_equal(vjp(g)[0], vjp_w(g)[0])
    low = jnp.ones((1, 40, 40, 1), jnp.bfloat16)
    assert jcnn.global_avg_pool(low).dtype == jnp.bfloat16
    assert float(jcnn.global_avg_pool(low)[0, 0]) == 1.0  # 1,600 ones summed in f32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_pools_low_precision(dtype):
    x = jnp.ones((1, 40, 40, 1), dtype)
    assert float(jcnn.avg_pool2d(x, 40)[0, 0, 0, 0]) == 1.0  # 1,600 ones summed in f32
    y = jcnn.max_pool2d(x * 3, 4)
    assert y.dtype == dtype and float(y.max()) == 3.0
    g = jax.grad(lambda x: jnp.sum(jcnn.avg_pool2d(x, 2).astype(jnp.float32)))(x)
    assert g.dtype == dtype and float(g[0, 0, 0, 0]) == 0.25


def test_pools_vmap_and_zero_batch():
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6, 2))
    y = jax.vmap(lambda x: jcnn.max_pool2d(x, 2))(x)
    np.testing.assert_array_equal(y[1], lax_max_pool(x[1], (2, 2), (2, 2), ((0, 0), (0, 0))))
    assert jcnn.avg_pool2d(np.ones((0, 4, 4, 1)), 2).shape == (0, 2, 2, 1)
    g = jax.grad(lambda x: jnp.sum(jcnn.max_pool2d(x, 2)))(np.ones((0, 4, 4, 1)))
    assert g.shape == (0, 4, 4, 1)


@pytest.mark.parametrize("window,stride,pads", [((2, 2), (1, 1), ((0, 0), (0, 0))),
                                                ((3, 2), (2, 1), ((1, 1), (0, 1)))])
def test_pools_full_jacobian_match_lax(window, stride, pads):
    """Every element of jax.jacrev against the lax reference's (tie-free input)."""
    x = np.random.default_rng(4).permutation(2 * 5 * 4 * 2).reshape(2, 5, 4, 2) / 80.0
    size = float(np.prod(window))
    for ours, ref in (
        (lambda x: jcnn.max_pool(x, window, stride=stride, padding=pads),
         lambda x: lax_max_pool(x, window, stride, pads)),
        (lambda x: jcnn.avg_pool(x, window, stride=stride, padding=pads),
         lambda x: lax_sum_pool(x, window, stride, pads) / size),
    ):
        np.testing.assert_allclose(jax.jacrev(ours)(x), jax.jacrev(ref)(x), atol=1e-14)
