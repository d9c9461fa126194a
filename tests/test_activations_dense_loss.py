"""Activations, dense and the loss against plain-jnp references and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.test_util import check_grads

import jcnn

# plain-jnp references, written from the formulas, differentiated by autodiff
REFS = {
    "relu": (jcnn.relu, lambda z: jnp.where(z > 0, z, 0.0)),
    "leaky_relu": (lambda z: jcnn.leaky_relu(z, 0.2), lambda z: jnp.where(z > 0, z, 0.2 * z)),
    "sigmoid": (jcnn.sigmoid, lambda z: 1 / (1 + jnp.exp(-z))),
    "tanh": (jcnn.tanh, lambda z: (jnp.exp(z) - jnp.exp(-z)) / (jnp.exp(z) + jnp.exp(-z))),
    "softmax": (jcnn.softmax, lambda z: jnp.exp(z) / jnp.sum(jnp.exp(z), -1, keepdims=True)),
    "log_softmax": (jcnn.log_softmax,
                    lambda z: z - jnp.log(jnp.sum(jnp.exp(z), -1, keepdims=True))),
}

# One fixed shape per property: the values vary, the compiled functions are reused.
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


# ---------------------------------------------------------------- dense
def _dense_ref(x, w, b):
    return x @ w + b


@jax.jit
def _dense_run(x, w, b, ct):
    out = []
    for f in (jcnn.dense, _dense_ref):
        y, vjp = jax.vjp(f, x, w, b)
        def loss(*a, f=f):
            return jnp.sum(jnp.tanh(f(*a)))

        hvp = jax.grad(lambda x: jnp.vdot(jax.grad(loss, 1)(x, w, b), w))(x)
        out.append((y, *vjp(ct), hvp))
    return out


@given(st.sampled_from([0, 3]), st.sampled_from([1, 4]), st.sampled_from([1, 3]),
       st.integers(0, 2**31 - 1))
def test_dense_matches_reference(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out))
    b = rng.standard_normal(d_out)
    ct = rng.standard_normal((n, d_out))
    ours, ref = _dense_run(x, w, b, ct)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)


def test_dense_check_grads_and_no_bias():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    check_grads(lambda *a: jnp.sum(jnp.tanh(jcnn.dense(*a))), (x, w, b), order=2,
                modes=["rev"])
    np.testing.assert_allclose(jcnn.dense(x, w), x @ w, rtol=1e-12)
    assert jax.grad(lambda w: jnp.sum(jcnn.dense(x, w)))(w).shape == w.shape


def test_flatten_is_row_major_channels_last():
    x = jnp.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(jcnn.flatten(x), np.arange(24.0).reshape(2, 12))


# ---------------------------------------------------------------- loss
def _ce_ref(z, labels):
    m = z.max(1, keepdims=True)
    lse = jnp.log(jnp.sum(jnp.exp(z - m), 1)) + m[:, 0]
    return jnp.mean(lse - jnp.take_along_axis(z, labels[:, None], 1)[:, 0])


@jax.jit
def _ce_run(z, labels, v):
    out = []
    for f in (jcnn.softmax_cross_entropy, _ce_ref):
        hvp = jax.grad(lambda z: jnp.vdot(jax.grad(f)(z, labels), v))(z)
        out.append((f(z, labels), jax.grad(f)(z, labels), hvp))
    return out


@given(st.sampled_from([1, 4]), st.sampled_from([2, 5]), st.integers(0, 2**31 - 1),
       st.floats(0.1, 50))
def test_cross_entropy_matches_reference(n, k, seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    (loss, g, h), (lr, gr, hr) = _ce_run(logits, labels, rng.standard_normal((n, k)))
    np.testing.assert_allclose(loss, lr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.sum(1), 0.0, atol=1e-12)  # rows of softmax − onehot
    np.testing.assert_allclose(h, hr, rtol=1e-8, atol=1e-12)


def test_cross_entropy_hand_numbers():
    # uniform logits over K classes: loss log K, gradient (1/K − onehot)/N
    loss = jcnn.softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([1, 3]))
    assert float(loss) == pytest.approx(np.log(4))
    g = jax.grad(jcnn.softmax_cross_entropy)(jnp.zeros((2, 4)), jnp.array([1, 3]))
    np.testing.assert_allclose(g, [[0.125, -0.375, 0.125, 0.125],
                                   [0.125, 0.125, 0.125, -0.375]])
    # huge logits stay finite (log-sum-exp)
    assert np.isfinite(jcnn.softmax_cross_entropy(jnp.array([[1e4, -1e4]]), jnp.array([1])))


def test_cross_entropy_low_precision_accumulates():
    z = jnp.zeros((1600, 3), jnp.bfloat16)
    loss = jcnn.softmax_cross_entropy(z, jnp.zeros(1600, jnp.int32))
    assert loss.dtype == jnp.float32 and float(loss) == pytest.approx(np.log(3), rel=1e-6)
    assert jax.grad(jcnn.softmax_cross_entropy)(z, jnp.zeros(1600, jnp.int32)).dtype == \
        jnp.bfloat16
