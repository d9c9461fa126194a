"""Activations (jcnn/activations.py) against jax.nn and plain autodiff of their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.test_util import check_grads

import jcnn

REFS = {
    "relu": (jcnn.relu, lambda z: jnp.where(z > 0, z, 0.0)),
    "leaky_relu": (lambda z: jcnn.leaky_relu(z, 0.2), lambda z: jnp.where(z > 0, z, 0.2 * z)),
    "sigmoid": (jcnn.sigmoid, lambda z: 1 / (1 + jnp.exp(-z))),
    "tanh": (jcnn.tanh, lambda z: (jnp.exp(z) - jnp.exp(-z)) / (jnp.exp(z) + jnp.exp(-z))),
    "softmax": (jcnn.softmax, lambda z: jnp.exp(z) / jnp.sum(jnp.exp(z), -1, keepdims=True)),
    "log_softmax": (jcnn.log_softmax,
                    lambda z: z - jnp.log(jnp.sum(jnp.exp(z), -1, keepdims=True))),
}


_values = st.floats(-5, 5, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


def _compare(ours, ref):
    @jax.jit
    def run(x, ct):
        out = []
        for f in (ours, ref):
            y, vjp = jax.vjp(f, x)
            hvp = jax.grad(lambda x: jnp.vdot(jax.vjp(f, x)[1](ct)[0], ct))(x)
            out.append((y, vjp(ct)[0], hvp))
        return out
    return run


_RUNS = {name: _compare(*fns) for name, fns in REFS.items()}


@pytest.mark.parametrize("name", list(REFS))
@given(x=hnp.arrays(np.float64, (3, 5), elements=_values),
       ct=hnp.arrays(np.float64, (3, 5), elements=st.floats(-2, 2)))
def test_activation_values_and_gradients(name, x, ct):
    """Values, vjp and reverse-over-reverse HVP vs autodiff of the plain formula."""
    (y, g, h), (yr, gr, hr) = _RUNS[name](x, ct)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, hr, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(REFS))
def test_activation_check_grads_order_2(name):
    x = np.random.default_rng(1).standard_normal((3, 4)) + 0.05
    check_grads(REFS[name][0], (x,), order=2, modes=["rev", "fwd"])


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
    for name, (ours, ref) in REFS.items():
        y = ours(z)
        assert y.dtype == dtype, name
        np.testing.assert_allclose(np.asarray(y, np.float64),
                                   ref(np.asarray(z, np.float64)), atol=2e-2)
        assert jax.grad(lambda z: jnp.sum(ours(z)).astype(jnp.float32))(z).dtype == dtype


def test_softmax_axis():
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    for axis in (0, 1, -1):
        np.testing.assert_allclose(jcnn.softmax(x, axis=axis).sum(axis), 1.0, rtol=1e-12)
        np.testing.assert_allclose(jcnn.softmax(x, axis=axis), jax.nn.softmax(x, axis=axis),
                                   rtol=1e-12)

