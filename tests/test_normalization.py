"""Batch norm: values and the hand-written VJP against autodiff of the plain
formula (f64), synchronised statistics over a mapped axis, low precision, the
layer's running statistics, errors."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import finite_difference_check
from hypothesis import example, given
from hypothesis import strategies as st
from jax import lax
from oracles import lax_batch_norm

import jcnn
from jcnn import nn


@st.composite
def bn_cases(draw):
    rank = draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(rank - 1)) + (draw(st.integers(1, 5)),)
    if np.prod(shape[:-1]) == 1:  # one value per channel: x̂ = 0, still defined
        shape = (2, *shape[1:])
    return shape, draw(st.sampled_from([1e-5, 1e-3, 0.5])), draw(st.integers(0, 2**31 - 1))


def _arrays(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.standard_normal(shape) * rng.uniform(0.1, 5.0, c) + rng.uniform(-3, 3, c)
    return x, rng.standard_normal(c), rng.standard_normal(c)


@partial(jax.jit, static_argnames="eps")
def _vjps(x, scale, offset, cts, eps):
    ours = jax.vjp(lambda *a: jcnn.batch_norm(*a, eps=eps), x, scale, offset)
    ref = jax.vjp(lambda *a: lax_batch_norm(*a, eps=eps), x, scale, offset)
    return ours[0], ref[0], ours[1](cts), ref[1](cts)


@given(bn_cases())
@example(((2, 1, 1, 3), 1e-5, 0))  # two values per channel
@example(((7, 1), 1e-5, 1))  # (N, C): a dense layer's batch norm
def test_values_and_vjp_match_autodiff_of_the_formula(case):
    shape, eps, seed = case
    x, scale, offset = _arrays(shape, seed)
    rng = np.random.default_rng(seed + 1)
    c = shape[-1]
    cts = (rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c))
    out, want, grads, want_grads = _vjps(x, scale, offset, cts, eps)
    for name, a, b in zip(("y", "mean", "var"), out, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
    for name, a, b in zip(("dx", "dscale", "doffset"), grads, want_grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


def test_normalised_output_has_zero_mean_unit_variance_per_channel():
    x, _, _ = _arrays((8, 5, 5, 3), 0)
    y, _, _ = jcnn.batch_norm(x, np.ones(3), np.zeros(3), eps=1e-12)
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var((0, 1, 2)), 1, rtol=1e-9)


def test_hand_worked_example():
    """Channel values 1, 3 → μ = 2, σ² = 1 (biased), x̂ = ∓1; γ = 2, β = 5 → y = 3, 7.
    With dy = (1, 0): dβ = 1, dγ = Σ dy·x̂ = −1, dx = γ/σ·(dy − mean dy − x̂·mean(dy·x̂))
    = 2·((1, 0) − 1/2 − (−1, 1)·1/2) = (0, 0) — a shift of both inputs moves nothing."""
    x, g, b = jnp.array([[1.0], [3.0]]), jnp.array([2.0]), jnp.array([5.0])
    (y, mean, var), vjp = jax.vjp(lambda *a: jcnn.batch_norm(*a, eps=1e-12), x, g, b)
    np.testing.assert_allclose(y[:, 0], [3.0, 7.0], rtol=1e-9)
    assert (float(mean[0]), float(var[0])) == (2.0, 1.0)
    dx, dg, db = vjp((jnp.array([[1.0], [0.0]]), jnp.zeros(1), jnp.zeros(1)))
    np.testing.assert_allclose(dx[:, 0], [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose((dg[0], db[0]), (-1.0, 1.0), rtol=1e-9)


def test_second_order_by_finite_differences():
    x, g, b = _arrays((3, 2, 2, 2), 5)
    finite_difference_check(
        lambda x, g, b: jnp.sum(jnp.tanh(jcnn.batch_norm(x, g, b, eps=1e-3)[0]) * x),
        (x, g, b), 5, rtol=1e-5, atol=1e-6)


def test_axis_name_gives_the_statistics_and_gradients_of_the_whole_batch():
    """Synchronised batch norm: 3 "devices" (a vmapped axis) holding 2 images each
    equal one batch of 6, values and gradients (grad taken per device, as under
    shard_map; parameter gradients summed over devices)."""
    x, g, b = _arrays((6, 3, 3, 4), 2)
    rng = np.random.default_rng(3)
    cts = (rng.standard_normal(x.shape), rng.standard_normal(4), rng.standard_normal(4))

    def per_device(xd, ct_y, ct_mean, ct_var):
        out, vjp = jax.vjp(lambda x, g, b: jcnn.batch_norm(x, g, b, axis_name="d"), xd, g, b)
        dx, dg, db = vjp((ct_y, ct_mean, ct_var))
        return out, dx, lax.psum(dg, "d"), lax.psum(db, "d")

    # the statistics' cotangents split over the devices' copies: they add up to cts
    parts = [np.stack([c / 3] * 3) for c in cts[1:]]
    (y, mean, var), dx, dg, db = jax.jit(jax.vmap(per_device, axis_name="d"))(
        x.reshape(3, 2, 3, 3, 4), cts[0].reshape(3, 2, 3, 3, 4), *parts)
    (y_ref, mean_ref, var_ref), vjp = jax.vjp(lax_batch_norm, x, g, b)
    dx_ref, dg_ref, db_ref = vjp(cts)
    np.testing.assert_allclose(y.reshape(x.shape), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean[1], mean_ref, rtol=1e-12)
    np.testing.assert_allclose(var[2], var_ref, rtol=1e-12)
    np.testing.assert_allclose(dx.reshape(x.shape), dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dg[0], dg_ref, rtol=1e-10)
    np.testing.assert_allclose(db[0], db_ref, rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_normalises_in_f32(dtype):
    x, g, b = _arrays((16, 4, 4, 3), 4)
    x = (x * 100 + 1000).astype(dtype)  # a large mean: a low-precision sum would lose it
    y, mean, var = jcnn.batch_norm(x, g.astype(dtype), b.astype(dtype))
    assert y.dtype == dtype and mean.dtype == var.dtype == jnp.float32
    y_ref, mean_ref, var_ref = lax_batch_norm(x.astype(np.float64), g.astype(dtype).astype(
        np.float64), b.astype(dtype).astype(np.float64))
    tol = {jnp.bfloat16: 2e-2, jnp.float16: 2e-3, jnp.float32: 1e-5}[dtype]
    np.testing.assert_allclose(y.astype(np.float64), y_ref, rtol=tol, atol=4 * tol)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6)
    np.testing.assert_allclose(var, var_ref, rtol=1e-4)
    dx = jax.grad(lambda x: jnp.sum(jcnn.batch_norm(x, g.astype(dtype), b.astype(dtype))[0]
                                    .astype(jnp.float32) ** 2))(x)
    assert dx.dtype == dtype and bool(jnp.all(jnp.isfinite(dx.astype(jnp.float32))))


# ----------------------------------------------------------------- the layer
def test_layer_running_statistics_follow_the_momentum_rule():
    layer = nn.BatchNorm(momentum=0.75)
    _, params, state = nn.init_with_state(layer, jax.random.key(0), (-1, 2))
    assert state["mean"].tolist() == [0.0, 0.0] and state["var"].tolist() == [1.0, 1.0]
    x = jnp.array([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]], jnp.float32)
    _, state = layer.apply(params, x, state=state, train=True)
    # batch mean (3, 20), biased var (8/3, 200/3); running = 0.75·old + 0.25·batch
    np.testing.assert_allclose(state["mean"], [0.75, 5.0], rtol=1e-6)
    np.testing.assert_allclose(state["var"], [0.75 + 2 / 3, 0.75 + 50 / 3], rtol=1e-6)


def test_layer_evaluation_uses_running_statistics_and_keeps_state():
    layer = nn.BatchNorm(eps=1e-5)
    params = {"scale": jnp.array([2.0]), "offset": jnp.array([1.0])}
    state = {"mean": jnp.array([4.0]), "var": jnp.array([9.0])}
    x = jnp.array([[7.0], [1.0]])
    y, same = layer.apply(params, x, state=state, train=False)
    np.testing.assert_allclose(y[:, 0], [2 * 3 / np.sqrt(9 + 1e-5) + 1,
                                         2 * -3 / np.sqrt(9 + 1e-5) + 1], rtol=1e-6)
    assert same is state


def test_running_statistics_get_no_gradient_and_keep_their_dtype():
    layer = nn.BatchNorm()
    _, params, state = nn.init_with_state(layer, jax.random.key(0), (-1, 3))
    x = jnp.asarray(_arrays((4, 3), 0)[0])  # f64 input, f32 state

    def loss(params):
        y, new = layer.apply(params, x, state=state, train=True)
        return jnp.sum(y ** 3) + jnp.sum(new["mean"]) + jnp.sum(new["var"]), new

    (_, new), grads = jax.value_and_grad(loss, has_aux=True)(params)
    assert new["mean"].dtype == new["var"].dtype == jnp.float32
    (_, _), grads_without = jax.value_and_grad(
        lambda p: (jnp.sum(layer.apply(p, x, state=state, train=True)[0] ** 3), 0),
        has_aux=True)(params)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads_without)):
        np.testing.assert_allclose(a, b)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.ones(3), np.ones(3), np.zeros(3)), {}, ValueError,
     r"batch_norm: x must be \(N, \.\.\., C\)"),
    ((np.ones((2, 3)), np.ones(2), np.zeros(3)), {}, ValueError,
     r"batch_norm: `scale` must have shape \(3,\) for x of shape \(2, 3\).*got \(2,\)"),
    ((np.ones((2, 3)), np.ones(3), np.zeros((1, 3))), {}, ValueError, r"`offset` must have shape"),
    ((np.ones((2, 3), np.int32), np.ones(3), np.zeros(3)), {}, TypeError, "floating point"),
    ((np.ones((2, 3)), np.ones(3), np.zeros(3)), {"eps": 0.0}, ValueError,
     "`eps` must be positive"),
])
def test_bad_input_is_named(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        jcnn.batch_norm(*args, **kwargs)


def test_layer_errors():
    with pytest.raises(ValueError, match="BatchNorm: `momentum` must be in"):
        nn.BatchNorm(momentum=1.0)
    layer = nn.BatchNorm()
    _, params, state = nn.init_with_state(layer, jax.random.key(0), (-1, 2))
    with pytest.raises(TypeError, match="BatchNorm: apply needs `state=`"):
        layer.apply(params, jnp.ones((2, 2)))
    model = nn.serial(nn.Flatten, nn.BatchNorm())
    _, params, state = nn.init_with_state(model, jax.random.key(0), (-1, 2))
    with pytest.raises(TypeError, match="serial: this model has state"):
        model.apply(params, jnp.ones((2, 2)))
    with pytest.raises(ValueError, match=r"batch_norm_inference: `mean` must have shape \(2,\)"):
        jcnn.batch_norm_inference(jnp.ones((2, 2)), jnp.ones(2), jnp.zeros(2), jnp.zeros(3),
                                  jnp.ones(2))
