"""Activations (jcnn/activations.py, jcnn/smooth_activations.py) against jax.nn and
plain autodiff of their formulas; hand-worked derivatives, the layers, errors; PyTorch's
values and gradients when installed."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import finite_difference_check
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.scipy.special import erf

import jcnn
from jcnn import _nn_vocab as vocab
from jcnn.smooth_activations import elu, gelu, hard_swish, silu, softplus

REFS = {
    "relu": (jcnn.relu, lambda z: jnp.where(z > 0, z, 0.0)),
    "leaky_relu": (lambda z: jcnn.leaky_relu(z, 0.2), lambda z: jnp.where(z > 0, z, 0.2 * z)),
    "sigmoid": (jcnn.sigmoid, lambda z: 1 / (1 + jnp.exp(-z))),
    "tanh": (jcnn.tanh, lambda z: (jnp.exp(z) - jnp.exp(-z)) / (jnp.exp(z) + jnp.exp(-z))),
    "softmax": (jcnn.softmax, lambda z: jnp.exp(z) / jnp.sum(jnp.exp(z), -1, keepdims=True)),
    "log_softmax": (jcnn.log_softmax,
                    lambda z: z - jnp.log(jnp.sum(jnp.exp(z), -1, keepdims=True))),
    "gelu": (gelu, lambda z: z * 0.5 * (1 + erf(z / np.sqrt(2)))),
    "gelu_tanh": (lambda z: gelu(z, approximate=True),
                  lambda z: 0.5 * z * (1 + jnp.tanh(np.sqrt(2 / np.pi)
                                                    * (z + 0.044715 * z ** 3)))),
    "silu": (silu, lambda z: z / (1 + jnp.exp(-z))),
    "elu": (lambda z: elu(z, 0.7), lambda z: jnp.where(z > 0, z, 0.7 * (jnp.exp(z) - 1))),
    "softplus": (softplus, lambda z: jnp.log(1 + jnp.exp(z))),
    "hard_swish": (hard_swish, lambda z: z * jnp.minimum(jnp.maximum(z + 3, 0), 6) / 6),
}


_values = st.floats(-5, 5, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


def _compare(ours, ref):
    @jax.jit
    def run(x, ct):
        out = []
        for f in (ours, ref):
            y, vjp = jax.vjp(f, x)
            hvp = jax.grad(lambda x: jnp.vdot(jax.vjp(f, x)[1](ct)[0], ct))(x)
            out.append((y, vjp(ct)[0], hvp, jax.jvp(f, (x,), (ct,))[1]))
        return out
    return run


_RUNS = {name: _compare(*fns) for name, fns in REFS.items()}


@pytest.mark.parametrize("name", list(REFS))
@given(x=hnp.arrays(np.float64, (3, 5), elements=_values),
       ct=hnp.arrays(np.float64, (3, 5), elements=st.floats(-2, 2)))
def test_activation_values_and_gradients(name, x, ct):
    """Values, vjp, reverse-over-reverse HVP and jvp (forward mode) vs autodiff of the
    plain formula."""
    (y, g, h, t), (yr, gr, hr, tr) = _RUNS[name](x, ct)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, hr, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(t, tr, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(REFS))
def test_activation_derivatives_by_finite_differences(name):
    """First and second order against central differences (no formula involved)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 4)) + 0.05, rng.standard_normal((3, 4))
    finite_difference_check(lambda x: jnp.vdot(REFS[name][0](x), w), (x,), 2)


def test_relu_derivative_at_zero_is_zero():
    assert float(jax.grad(jcnn.relu)(0.0)) == 0.0
    assert float(jax.grad(lambda z: jcnn.leaky_relu(z, 0.1))(0.0)) == pytest.approx(0.1)


def test_sigmoid_tanh_derivatives_from_output():
    z = jnp.linspace(-3, 3, 7)
    a = jcnn.sigmoid(z)
    np.testing.assert_allclose(jax.vmap(jax.grad(jcnn.sigmoid))(z), a * (1 - a), rtol=1e-12)
    t = jcnn.tanh(z)
    np.testing.assert_allclose(jax.vmap(jax.grad(jcnn.tanh))(z), 1 - t**2, rtol=1e-12)


def test_stability_and_nonfinite_inputs():
    big = jnp.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(jcnn.softmax(big), [[1, 0, 0]], atol=1e-300)
    np.testing.assert_allclose(jcnn.log_softmax(big), [[0, -1000, -2000]])
    assert jcnn.sigmoid(jnp.array(-1000.0)) == 0.0 and jcnn.sigmoid(jnp.array(1000.0)) == 1.0
    z = jnp.array([np.nan, -np.inf, np.inf, 1.0])
    r = jcnn.relu(z)
    assert np.isnan(r[0]) and r[1] == 0 and r[2] == np.inf and r[3] == 1
    assert np.isnan(jcnn.sigmoid(z)[0]) and jcnn.sigmoid(z)[1] == 0 and jcnn.sigmoid(z)[2] == 1
    np.testing.assert_array_equal(jax.grad(lambda z: jnp.sum(jcnn.relu(z)))(z), [0, 0, 1, 1])
    # softmax with -inf entries: they get probability 0, the rest stays finite
    s = jcnn.softmax(jnp.array([[0.0, -np.inf, 0.0]]))
    np.testing.assert_array_equal(s, [[0.5, 0, 0.5]])
    # a NaN in one row does not poison the others
    rows = jcnn.log_softmax(jnp.array([[np.nan, 1.0], [1.0, 2.0]]))
    assert np.isnan(rows[0]).all() and np.isfinite(rows[1]).all()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_activation_dtypes(dtype):
    z = jnp.linspace(-2, 2, 9).astype(dtype)
    run = jax.jit(lambda z: {name: (ours(z), jax.grad(lambda z: jnp.sum(ours(z)).astype(
        jnp.float32))(z)) for name, (ours, _) in REFS.items()})
    for name, (y, g) in run(z).items():
        assert y.dtype == g.dtype == dtype, name
        np.testing.assert_allclose(np.asarray(y, np.float64),
                                   REFS[name][1](np.asarray(z, np.float64)), atol=2e-2,
                                   err_msg=name)


def test_softmax_axis():
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    for axis in (0, 1, -1):
        np.testing.assert_allclose(jcnn.softmax(x, axis=axis).sum(axis), 1.0, rtol=1e-12)
        np.testing.assert_allclose(jcnn.softmax(x, axis=axis), jax.nn.softmax(x, axis=axis),
                                   rtol=1e-12)



# ----------------------------------------------------------------- the smooth ones
def test_smooth_activations_hand_numbers():
    """From the formulas: gelu(1) = Φ(1) = (1 + erf(1/√2))/2, erf(1/√2) = 0.6827 (one σ);
    at 0 every derivative is ½ (Φ(0), σ(0), elu′(0) = α = ½ here, hard_swish′(0) = ½);
    elu′ = α·e^x below 0; softplus′ = σ; hard_swish′ = x/3 + ½ on (−3, 3), 0 up to −3 and
    1 from 3 on (PyTorch's values at the kinks); hard_swish(±3) = 0, 3."""
    assert float(gelu(1.0)) == pytest.approx(0.5 * (1 + 0.6826894921370859), rel=1e-6)
    fs = (gelu, partial(gelu, approximate=True), silu, partial(elu, alpha=0.5), softplus,
          hard_swish)
    z = jnp.array([0.0, -3.0, 3.0, -4.0, 4.0])
    d = jax.jit(lambda z: jnp.stack([jax.vmap(jax.grad(f))(z) for f in fs], 1))(z)
    np.testing.assert_allclose(d[0], [0.5] * 6, rtol=1e-6)
    np.testing.assert_allclose(d[:, 5], [0.5, 0.0, 1.0, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(hard_swish))(jnp.array([-2.999, 2.999])),
                               [-0.4996667, 1.4996667], rtol=1e-6)
    np.testing.assert_allclose(d[1:, 3], [0.5 * np.exp(-3.0), 1.0, 0.5 * np.exp(-4.0), 1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(d[:, 4], 1 / (1 + np.exp(-np.asarray(z))), rtol=1e-6)
    np.testing.assert_allclose(hard_swish(jnp.array([-3.0, 3.0])), [0.0, 3.0])
    assert float(softplus(0.0)) == pytest.approx(np.log(2), rel=1e-6)
    assert float(elu(-1000.0, 0.5)) == -0.5


def test_smooth_activations_far_out_stay_finite():
    z = jnp.array([-1000.0, -40.0, 40.0, 1000.0])
    names = ("gelu", "gelu_tanh", "silu", "elu", "softplus", "hard_swish")
    run = jax.jit(lambda z: [(REFS[n][0](z), jax.vmap(jax.grad(REFS[n][0]))(z)) for n in names])
    for name, (y, g) in zip(names, run(z)):
        assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(g))), name
        np.testing.assert_allclose(y[-1], 1000.0, err_msg=name)  # x for large x
        np.testing.assert_allclose(g[-1], 1.0, err_msg=name)


def test_activation_layers_apply_the_functions():
    x = jnp.linspace(-4, 4, 9)
    for layer, f in ((vocab.Gelu(), gelu), (vocab.Gelu(approximate=True),
                                            lambda z: gelu(z, approximate=True)),
                     (vocab.Silu(), silu), (vocab.Elu(0.3), lambda z: elu(z, 0.3)),
                     (vocab.Softplus(), softplus), (vocab.HardSwish(), hard_swish)):
        shape, params = layer.init(jax.random.key(0), (-1, 3, 3, 2))
        assert shape == (-1, 3, 3, 2) and params == {}
        np.testing.assert_array_equal(layer.apply(params, x), f(x))


@pytest.mark.parametrize("call, error, match", [
    (lambda: gelu(jnp.ones(2), approximate="tanh"), TypeError,
     "gelu: `approximate` must be True or False, got 'tanh'"),
    (lambda: elu(jnp.ones(2), alpha="1"), TypeError, "elu: `alpha` must be a Python number"),
    (lambda: elu(jnp.ones(2), alpha=True), TypeError, "elu: `alpha` must be a Python number"),
    (lambda: silu(jnp.ones(2, jnp.int32)), TypeError,
     "silu: `x` must have a floating-point dtype, got int32"),
    (lambda: softplus("x"), TypeError, "softplus: `x` must be an array"),
    (lambda: hard_swish(None), TypeError, "hard_swish: `x` must be an array"),
    (lambda: vocab.Gelu("tanh"), TypeError, "Gelu: `approximate` must be True or False"),
    (lambda: vocab.Elu(None), TypeError, "Elu: `alpha` must be a Python number"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.concatenate([np.linspace(-5, 5, 41), [-3.0, 3.0, 0.0]])
    for ours, theirs in ((gelu, F.gelu), (lambda z: gelu(z, approximate=True),
                                          lambda t: F.gelu(t, approximate="tanh")),
                         (silu, F.silu), (lambda z: elu(z, 0.7), lambda t: F.elu(t, 0.7)),
                         (softplus, F.softplus), (hard_swish, F.hardswish)):
        t = torch.tensor(x, requires_grad=True)
        y = theirs(t)
        y.sum().backward()
        value, grad = jax.jit(lambda x: (ours(x), jax.vmap(jax.grad(ours))(x)))(x)
        np.testing.assert_allclose(value, y.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12, atol=1e-14)
