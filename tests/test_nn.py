"""The layer API (jcnn/nn.py): shapes, params, errors, summary, initialisers, the lax twin."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_digits
from oracles import lax_twin

import jcnn
from jcnn import nn
from jcnn.data import load_digits

KEY = jax.random.key(0)


@pytest.mark.parametrize("layer,shape", [
    (nn.Conv(5, (3, 3)), (2, 9, 9, 3)),
    (nn.Conv(4, (3, 2), stride=2, padding="SAME", dilation=(1, 2)), (2, 9, 8, 2)),
    (nn.Conv(6, (3,), groups=3, padding=((1, 0),)), (1, 7, 3)),
    (nn.Conv(2, (2, 2, 2), padding=1), (1, 4, 4, 4, 2)),
    (nn.Conv(3, (3, 3), padding=2, padding_mode="reflect"), (2, 6, 5, 2)),
    (nn.ConvTranspose(4, (3, 3), stride=2, padding=1, output_padding=1), (2, 5, 4, 3)),
    (nn.ConvTranspose(4, (2, 2, 2), stride=2, groups=2), (1, 2, 3, 2, 2)),
    (nn.AdaptiveAvgPool((3, 2)), (2, 7, 5, 3)),
    (nn.AdaptiveMaxPool((4,)), (2, 9, 3)),
    (nn.MaxPool((2, 2)), (2, 9, 9, 3)),
    (nn.MaxPool((3, 3), stride=2, padding=1, ceil_mode=True), (2, 10, 9, 3)),
    (nn.AvgPool((2, 3), count_include_pad=False, padding=1), (1, 6, 7, 2)),
    (nn.GlobalAvgPool, (2, 5, 5, 3)),
    (nn.GlobalMaxPool, (2, 5, 3)),
    (nn.Flatten, (2, 3, 4, 5)),
    (nn.Dense(7), (3, 11)),
    (nn.Relu, (2, 3)), (nn.LeakyRelu(0.1), (2, 3)), (nn.Sigmoid, (2, 3)), (nn.Tanh, (2, 3)),
    (nn.Softmax, (2, 3)), (nn.LogSoftmax, (2, 3)), (nn.Dropout(0.5), (4, 6)),
])
def test_init_shape_equals_apply_shape(layer, shape):
    out_shape, params = layer.init(KEY, (-1, *shape[1:]))
    y = layer.apply(params, jnp.ones(shape, jnp.float32), key=KEY, train=True)
    assert out_shape == (-1, *y.shape[1:])


def test_serial_shapes_and_params_are_plain_pytrees():
    model = train_digits.digits_model()
    out_shape, params = model.init(KEY, (-1, 8, 8, 1))
    assert out_shape == (-1, 10)
    assert isinstance(params, tuple) and all(isinstance(p, dict) for p in params)
    assert params[0]["w"].shape == (3, 3, 1, 32) and params[0]["b"].shape == (32,)
    y = model.apply(params, jnp.ones((5, 8, 8, 1), jnp.float32))
    assert y.shape == (5, 10)
    # optax and tree_util take the params as they are
    opt = optax.adam(1e-3)
    state = opt.init(params)
    updates, _ = opt.update(jax.tree_util.tree_map(jnp.ones_like, params), state, params)
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)


def test_initialisers_have_the_stated_scale():
    _, p = nn.Conv(256, (3, 3)).init(KEY, (-1, 16, 16, 64))
    fan_in = 3 * 3 * 64
    assert abs(float(jnp.std(p["w"])) - np.sqrt(2 / fan_in)) < 0.02 * np.sqrt(2 / fan_in)
    _, p = nn.Dense(300).init(KEY, (-1, 500))
    limit = np.sqrt(6 / 800)
    assert float(jnp.abs(p["w"]).max()) <= limit and float(jnp.abs(p["w"]).max()) > 0.95 * limit


def test_init_says_which_layer_breaks():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Dense(3))
    with pytest.raises(ValueError, match=r"serial: layer 2 \(Dense\) cannot take input shape "
                                         r"\(-1, 4, 4, 4\).*Flatten"):
        model.init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"serial: layer 1 \(MaxPool\).*window 5 is larger"):
        nn.serial(nn.Conv(2, (3, 3)), nn.MaxPool((5, 5))).init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\).*does not match the window"):
        nn.serial(nn.Conv(2, (3, 3))).init(KEY, (-1, 6, 1))
    with pytest.raises(TypeError, match="serial: argument 1 is not a Layer"):
        nn.serial(nn.Relu, "relu")
    with pytest.raises(ValueError, match="Dropout: `rate` must be in"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="needs a PRNG `key`"):
        nn.Dropout(0.5).apply({}, jnp.ones(3), train=True)


def test_summary_numbers_by_hand():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))
    rows = nn.summary_rows(model, (-1, 6, 6, 1))
    # conv: 3·3·1·4 weights + 4 biases = 40; output 4·4·4 = 64 values from 36 inputs,
    # so a dense layer would need 36·64 + 64 = 2,368 parameters
    assert rows[0]["params"] == 40 and rows[0]["output_shape"] == (-1, 4, 4, 4)
    assert rows[0]["dense_params"] == 2368
    assert rows[2]["output_shape"] == (-1, 2, 2, 4) and rows[3]["output_shape"] == (-1, 16)
    assert rows[4]["params"] == 16 * 10 + 10
    text = nn.summary(model, (-1, 6, 6, 1))
    assert "2,368" in text and "59x" in text  # 2,368 / 40 ≈ 59
    assert text.splitlines()[-1].split()[:2] == ["total", "210"]
    assert sum(r["params"] for r in rows) == 210


def test_lax_twin_agrees_in_loss_and_gradients():
    model = train_digits.digits_model()
    _, params = model.init(KEY, (-1, 8, 8, 1))
    x_tr, y_tr, _, _ = load_digits()
    x, y = x_tr[:64], y_tr[:64]
    twin = lax_twin(model)

    def loss(apply):
        return lambda p: jcnn.softmax_cross_entropy(apply(p, x), y)

    with jax.default_matmul_precision("highest"):  # f32 products on a GPU too, both sides
        l1, g1 = jax.jit(jax.value_and_grad(loss(model.apply)))(params)
        l2, g2 = jax.jit(jax.value_and_grad(loss(twin)))(params)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("int_layer,tuple_layer", [
    (lambda n: nn.Conv(2, 3, padding=1), lambda n: nn.Conv(2, (3,) * n, padding=1)),
    (lambda n: nn.ConvTranspose(2, 2, stride=2), lambda n: nn.ConvTranspose(2, (2,) * n,
                                                                             stride=2)),
    (lambda n: nn.MaxPool(2), lambda n: nn.MaxPool((2,) * n)),
    (lambda n: nn.AvgPool(3, stride=1, padding=1), lambda n: nn.AvgPool((3,) * n, stride=1,
                                                                        padding=1)),
    (lambda n: nn.AdaptiveAvgPool(1), lambda n: nn.AdaptiveAvgPool((1,) * n)),
    (lambda n: nn.AdaptiveMaxPool(2), lambda n: nn.AdaptiveMaxPool((2,) * n)),
])
def test_an_int_window_is_that_size_in_every_spatial_dim(nd, int_layer, tuple_layer):
    """``nn.Conv(8, 3)`` on an image is ``nn.Conv(8, (3, 3))``: same shapes, params, outputs."""
    shape = (2, *(4,) * nd, 2)
    x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
    out_i, p_i = int_layer(nd).init(KEY, (-1, *shape[1:]))
    out_t, p_t = tuple_layer(nd).init(KEY, (-1, *shape[1:]))
    assert out_i == out_t
    for a, b in zip(jax.tree_util.tree_leaves(p_i), jax.tree_util.tree_leaves(p_t), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(int_layer(nd).apply(p_i, x), tuple_layer(nd).apply(p_t, x))


def test_every_layer_without_arguments_is_used_the_same_way():
    """A layer that takes no arguments is a layer (``nn.Relu``) and calling it with
    none gives it back (``nn.Relu()``), as ``nn.LeakyRelu()`` gives a layer."""
    for layer in (nn.Relu, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Flatten,
                  nn.GlobalAvgPool, nn.GlobalMaxPool, nn.Identity):
        assert layer() is layer
    x = jnp.array([[-2.0, 3.0]])
    model = nn.serial(nn.Relu(), nn.LeakyRelu(), nn.Tanh())
    _, params = model.init(KEY, (-1, 2))
    np.testing.assert_allclose(model.apply(params, x), np.tanh([[0.0, 3.0]]), rtol=1e-6)
    with pytest.raises(TypeError, match=r"Relu is a layer, not a constructor: it takes no "
                                        r"arguments"):
        nn.Relu(0.1)
    with pytest.raises(TypeError, match=r"serial: argument 1 is LeakyRelu, a function that "
                                        r"makes a layer, not a Layer: call it, e.g. "
                                        r"nn.LeakyRelu\(...\)"):
        nn.serial(nn.Relu, nn.LeakyRelu)
    with pytest.raises(TypeError, match=r"residual: argument 0 is Conv, a function"):
        nn.residual(nn.Conv)


@pytest.mark.parametrize("build", [
    lambda shape: nn.serial(nn.Conv(4, 3)).init(KEY, shape),
    lambda shape: nn.Conv(4, 3).init(KEY, shape),
    lambda shape: nn.MaxPool(2).init(KEY, shape),
    lambda shape: nn.init_with_state(nn.BatchNorm(), KEY, shape),
    lambda shape: nn.output_shape(nn.Relu, shape),
    lambda shape: nn.summary(nn.serial(nn.Conv(4, 3)), shape),
])
def test_a_none_batch_is_a_clear_error(build):
    with pytest.raises(ValueError, match=r"input shape \(None, 8, 8, 3\) gives the batch size "
                                         r"as None; write -1 for any batch size: "
                                         r"\(-1, 8, 8, 3\)"):
        build((None, 8, 8, 3))


def test_unbatched_input_shape_is_an_error_not_a_1d_model():
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\).*does not match the window"):
        nn.serial(nn.Conv(16, (3, 3))).init(KEY, (8, 8, 1))


def test_apply_errors_name_the_layer():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Flatten, nn.Dense(3))
    _, params = model.init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"serial: layer 0 \(Conv\) failed on input shape "
                                         r"\(2, 6, 6, 2\): conv: x has 2 channels"):
        model.apply(params, jnp.ones((2, 6, 6, 2), jnp.float32))


def test_summary_shows_nested_blocks_without_initialising():
    block = nn.serial(nn.Conv(4, (3, 3), padding="SAME"), nn.Relu)
    model = nn.serial(block, nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))
    rows = nn.summary_rows(model, (-1, 8, 8, 1))
    assert [r["name"] for r in rows] == ["0.0: Conv", "0.1: Relu", "1: MaxPool", "2: Flatten",
                                         "3: Dense"]
    assert [r["params"] for r in rows] == [3 * 3 * 1 * 4 + 4, 0, 0, 0, 4 * 4 * 4 * 10 + 10]
    assert rows[-1]["output_shape"] == (-1, 10)
    table = nn.summary(model, (-1, 8, 8, 1))
    assert "0.1: Relu" in table and "3: Dense" in table
    # shapes only: 10¹⁰ weights (40 GB of f32) would not fit if they were initialised
    huge = nn.summary_rows(nn.serial(nn.Flatten, nn.Dense(100_000)), (-1, 100_000))
    assert huge[-1]["params"] == 100_000 * 100_000 + 100_000


def test_layers_take_jax_initializers():
    init = jax.nn.initializers.constant(0.5)
    _, p = nn.Conv(2, (3, 3), w_init=init).init(KEY, (-1, 5, 5, 1))
    assert p["w"].shape == (3, 3, 1, 2) and float(p["w"].min()) == float(p["w"].max()) == 0.5
    _, p = nn.Dense(3, w_init=jax.nn.initializers.lecun_normal()).init(KEY, (-1, 4000))
    std = float(jnp.std(p["w"]))
    assert abs(std - (1 / 4000) ** 0.5) < 0.1 * (1 / 4000) ** 0.5  # fan-in from axis -2
    _, p = nn.Conv(64, (3, 3)).init(KEY, (-1, 5, 5, 32))  # default: He normal, fan-in 3·3·32
    assert abs(float(jnp.std(p["w"])) - (2 / 288) ** 0.5) < 0.1 * (2 / 288) ** 0.5
    with pytest.raises(TypeError, match=r"Conv: `w_init` must be a JAX initializer"):
        nn.Conv(2, (3, 3), w_init="he")

