"""Mixed precision (jcnn.nn.mixed_precision, fit's compute_dtype): f32 parameters,
bf16/f16 activations and products, f32 outputs, losses and batch-norm statistics.

The oracle is the same model run in f32: a low-precision run must stay within
its dtype's rounding of it, and must really have computed in the low dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn
from jcnn import nn
from jcnn.data import load_digits
from jcnn.training import fit

KEY = jax.random.key(0)
SHAPE = (-1, 8, 8, 1)


def _model():
    return nn.serial(nn.Conv(8, 3, padding="SAME", use_bias=False), nn.BatchNorm(), nn.Relu,
                     nn.AvgPool(2), nn.Conv(8, 3, padding=1), nn.Relu, nn.GlobalAvgPool,
                     nn.Dense(10))


@pytest.fixture(scope="module")
def setup():
    model = _model()
    _, params, state = nn.init_with_state(model, KEY, SHAPE)
    x, y = load_digits(seed=0)[:2]
    return model, params, state, jnp.asarray(x[:32], jnp.float32), jnp.asarray(y[:32])


def test_a_model_is_not_run_on_low_precision_inputs_as_it_is(setup):
    """The reason for the wrapper: f32 parameters and a bf16 input do not mix."""
    model, params, state, x, _ = setup
    with pytest.raises(TypeError, match="arrays must share one dtype"):
        model.apply(params, x.astype(jnp.bfloat16), state=state)


@pytest.mark.parametrize("dtype,tol", [(jnp.bfloat16, 3e-2), (jnp.float16, 5e-3)])
def test_mixed_precision_stays_within_rounding_of_f32(setup, dtype, tol):
    model, params, state, x, y = setup
    mixed = nn.mixed_precision(model, dtype)

    def loss(apply):
        def f(p):
            out, new_state = apply(p, x, state=state, train=True)
            return jcnn.softmax_cross_entropy(out, y), (out, new_state)
        return jax.jit(jax.value_and_grad(f, has_aux=True))

    with jax.default_matmul_precision("highest"):
        (l32, (o32, s32)), g32 = loss(model.apply)(params)
    (lmp, (omp, smp)), gmp = loss(mixed.apply)(params)
    assert omp.dtype == jnp.float32 and lmp.dtype == jnp.float32
    scale = float(jnp.abs(o32).max())
    np.testing.assert_allclose(omp, o32, atol=tol * scale)
    assert not np.allclose(omp, o32, rtol=0, atol=1e-6 * scale)  # it did compute in low precision
    np.testing.assert_allclose(lmp, l32, rtol=tol)
    for a, b in zip(jax.tree_util.tree_leaves(g32), jax.tree_util.tree_leaves(gmp)):
        assert b.dtype == jnp.float32  # gradients reach the f32 params in f32
        # as a whole (a relu near 0 may switch under rounding)
        assert float(jnp.linalg.norm(b - a)) <= 3 * tol * float(jnp.linalg.norm(a))
    for a, b in zip(jax.tree_util.tree_leaves(s32), jax.tree_util.tree_leaves(smp)):
        assert b.dtype == jnp.float32  # running statistics stay f32
        np.testing.assert_allclose(b, a, atol=tol * float(jnp.abs(a).max()))


def test_the_products_run_in_the_compute_dtype(setup):
    model, params, state, x, _ = setup
    jaxpr = str(jax.make_jaxpr(lambda p: nn.mixed_precision(model).apply(p, x, state=state))(
        params))
    assert "bf16[32,8,8,8]" in jaxpr  # the first conv's output, in bf16
    assert "f32[32,10]" in jaxpr  # the logits, cast back for the loss
    with pytest.raises(TypeError, match="mixed_precision: `compute_dtype` must be one of"):
        nn.mixed_precision(model, jnp.int8)


def test_fit_trains_in_bf16_with_f32_parameters():
    data = load_digits(seed=0)
    model = nn.serial(nn.Conv(8, 3, padding="SAME"), nn.Relu, nn.MaxPool(2), nn.Flatten,
                      nn.Dense(10))
    result = fit(model, data, input_shape=SHAPE, epochs=3, lr=3e-3, compute_dtype=jnp.bfloat16,
                 progress=False)
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(result.params))
    assert result.history.test_accuracy[-1] > 0.6 and result.stats["skipped_steps"] == 0
