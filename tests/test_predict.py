"""Running a trained model: jcnn.training.predict and evaluate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn
from jcnn import nn
from jcnn.data import load_digits
from jcnn.layer import Layer
from jcnn.training import evaluate, predict

KEY = jax.random.key(0)
SHAPE = (-1, 8, 8, 1)


def _bn_model():
    return nn.serial(nn.Conv(4, 3, padding="SAME", use_bias=False), nn.BatchNorm(), nn.Relu,
                     nn.MaxPool(2), nn.Flatten, nn.Dense(10))


@pytest.fixture(scope="module")
def trained():
    """A batch-norm model with moved running statistics (a few train-mode passes)."""
    model = _bn_model()
    _, params, state = nn.init_with_state(model, KEY, SHAPE)
    x_tr, y_tr, x_te, y_te = load_digits(seed=0)
    for i in range(3):
        _, state = model.apply(params, x_tr[i * 64:(i + 1) * 64], state=state, train=True)
    return model, params, state, x_te[:37], y_te[:37]


def test_predict_outputs_are_those_of_apply(trained):
    model, params, state, x, _ = trained
    logits = np.asarray(model.apply(params, x, state=state)[0], np.float64)
    got = predict(model, params, x, state=state, output="logits", batch_size=16)  # 16+16+5
    np.testing.assert_allclose(got, logits, rtol=1e-5, atol=1e-6)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(predict(model, params, x, state=state, output="probs"), probs,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(predict(model, params, x, state=state, batch_size=16),
                                  logits.argmax(-1))


def test_predict_compiles_once_per_model_and_shape():
    """Ten calls on one shape trace the model once (predict keeps its jitted function)."""
    traces = []
    inner = nn.serial(nn.Flatten, nn.Dense(3))

    def apply(params, x, *, key=None, train=False):
        traces.append(x.shape)  # runs while tracing only
        return inner.apply(params, x)

    model = Layer(inner.init, apply, "counted")
    _, params = model.init(KEY, (-1, 4))
    x = np.ones((5, 4), np.float32)
    for _ in range(10):
        predict(model, params, x)
    assert traces == [(5, 4)]
    predict(model, params, np.ones((6, 4), np.float32))  # another shape: one more trace
    assert len(traces) == 2
    listed = nn.serial(nn.Conv(2, 3, padding=[[1, 1], [1, 1]]), nn.Flatten)  # a list in config
    _, p = listed.init(KEY, (-1, 3, 3, 1))
    assert predict(listed, p, np.ones((2, 3, 3, 1), np.float32), output="logits").shape == (2, 18)


def test_predict_and_evaluate_name_their_errors(trained):
    model, params, state, x, y = trained
    with pytest.raises(TypeError, match="predict: the model has state"):
        predict(model, params, x)
    with pytest.raises(TypeError, match="evaluate: the model has state .* pass state="):
        evaluate(model, params, x, y)
    with pytest.raises(ValueError, match="predict: `output` must be 'logits', 'probs' or"):
        predict(model, params, x, state=state, output="argmax")
    with pytest.raises(ValueError, match="predict: no examples"):
        predict(model, params, x[:0], state=state)


def test_evaluate_weighs_batches_by_their_size(trained):
    """37 examples in batches of 16, 16 and 5: the means equal those over all 37 at once."""
    model, params, state, x, y = trained
    accuracy = {"accuracy": lambda z, t: jnp.mean(jnp.argmax(z, -1) == t)}
    got = evaluate(model, params, x, y, state=state, batch_size=16, metrics=accuracy)
    logits = np.asarray(model.apply(params, x, state=state)[0], np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    np.testing.assert_allclose(got["loss"], -logp[np.arange(37), y].mean(), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], (logits.argmax(-1) == y).mean(), rtol=1e-6)
    same = evaluate(model, params, x, y, state=state, loss=jcnn.softmax_cross_entropy)
    np.testing.assert_allclose(same["loss"], got["loss"], rtol=1e-6)
