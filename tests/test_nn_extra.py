"""SpatialDropout, DropPath, SeparableConv and Upsample (jcnn/_nn_extra.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import lax_conv

from jcnn import nn
from jcnn._nn_extra import DropPath, SeparableConv, SpatialDropout, Upsample
from jcnn.upsampling import upsample

KEY = jax.random.key(0)


def test_spatial_dropout_drops_whole_feature_maps():
    layer = SpatialDropout(0.3)
    x = jnp.asarray(np.random.default_rng(0).uniform(1.0, 2.0, (40, 3, 2, 50)))
    assert layer.init(KEY, (-1, 3, 2, 50))[0] == (-1, 3, 2, 50)
    y = np.asarray(layer.apply({}, x, key=KEY, train=True))
    kept = (y != 0).reshape(40, 6, 50)
    assert np.all(kept == kept[:, :1, :])  # a (example, channel) map is kept or dropped whole
    np.testing.assert_allclose(y[y != 0], np.asarray(x)[y != 0] / 0.7, rtol=1e-12)
    assert abs(1 - kept[:, 0, :].mean() - 0.3) < 0.05  # 2,000 maps: rate ± 5 %
    np.testing.assert_array_equal(layer.apply({}, x), x)  # evaluation: identity
    # the gradient is the same mask times 1 / (1 − rate)
    g = jax.grad(lambda x: jnp.sum(layer.apply({}, x, key=KEY, train=True)))(x)
    np.testing.assert_allclose(g, (y != 0) / 0.7, rtol=1e-12)


def test_drop_path_drops_the_branch_per_example():
    conv = nn.Conv(3, (1, 1))
    block = nn.residual(nn.serial(conv, DropPath(0.5)))
    _, params = block.init(KEY, (-1, 2, 2, 3))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((64, 2, 2, 3)), jnp.float32)
    branch = conv.apply(params["block"][0], x)
    y = block.apply(params, x, key=KEY, train=True)
    dropped = np.all(np.isclose(y, x), axis=(1, 2, 3))
    kept = np.all(np.isclose(y, x + 2 * branch), axis=(1, 2, 3))
    assert np.all(dropped ^ kept) and 16 < dropped.sum() < 48  # each example one or the other
    np.testing.assert_allclose(block.apply(params, x), x + branch, rtol=1e-6)  # eval: identity
    y = DropPath(0.25).apply({}, jnp.ones((200, 5)), key=KEY, train=True)
    assert set(np.unique(y).tolist()) == {0.0, 4 / 3} and np.all(y == y[:, :1])


@pytest.mark.parametrize("make", [SpatialDropout, DropPath])
def test_dropouts_check_rate_and_key(make):
    with pytest.raises(ValueError, match=rf"{make.__name__}: `rate` must be in \[0, 1\)"):
        make(1.0)
    layer = make(0.5)
    with pytest.raises(ValueError, match=rf"{make.__name__}: apply\(..., train=True\) needs a "
                                         r"PRNG `key`"):
        layer.apply({}, jnp.ones((2, 3, 3)), train=True)
    np.testing.assert_array_equal(make(0.0).apply({}, jnp.ones((2, 3, 3)), train=True), 1.0)
    if make is SpatialDropout:
        with pytest.raises(ValueError, match=r"SpatialDropout: expects \(N, \*spatial, C\)"):
            nn.serial(layer).init(KEY, (-1, 8))


def _separable_oracle(x, params, stride, padding, dm):
    c = x.shape[-1]
    z = lax_conv(x, params["depthwise"], stride=stride, padding=padding, groups=c)
    return lax_conv(z, params["pointwise"], params.get("b"))


@settings(max_examples=max(10, settings.default.max_examples // 10))  # a compile each
@given(st.sampled_from([1, 2]), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
       st.booleans(), st.sampled_from(["SAME", "VALID", 1]), st.integers(0, 2**31 - 1),
       st.data())
def test_separable_conv_is_depthwise_then_pointwise(nd, k, stride, dm, bias, padding, seed, data):
    sizes = tuple(data.draw(st.integers(k, 6)) for _ in range(nd))
    c_in, c_out = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    layer = SeparableConv(c_out, k if data.draw(st.booleans()) else (k,) * nd, stride=stride,
                          padding=padding, depth_multiplier=dm, use_bias=bias)
    shape, params = layer.init(jax.random.key(seed), (-1, *sizes, c_in))
    assert params["depthwise"].shape == (*(k,) * nd, 1, c_in * dm)
    assert params["pointwise"].shape == (*(1,) * nd, c_in * dm, c_out)
    assert ("b" in params) == bias
    rng = np.random.default_rng(seed)
    params = {n: rng.standard_normal(p.shape) for n, p in params.items()}
    x = rng.standard_normal((2, *sizes, c_in))

    y = jax.jit(layer.apply)(params, x)
    assert shape == (-1, *y.shape[1:])
    np.testing.assert_allclose(y, _separable_oracle(x, params, stride, padding, dm), rtol=1e-10,
                               atol=1e-10)


def test_separable_conv_gradients():
    layer = SeparableConv(3, (3, 2), stride=(2, 1), depth_multiplier=2)
    _, params = layer.init(KEY, (-1, 5, 4, 2))
    rng = np.random.default_rng(3)
    params = {n: rng.standard_normal(p.shape) for n, p in params.items()}
    x = rng.standard_normal((2, 5, 4, 2))
    loss = lambda f: lambda p, x: jnp.sum(f(p, x) ** 2)  # noqa: E731
    g = jax.jit(jax.grad(loss(layer.apply), (0, 1)))(params, x)
    g_ref = jax.jit(jax.grad(loss(lambda p, x: _separable_oracle(x, p, (2, 1), "SAME", 2)),
                             (0, 1)))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_separable_conv_errors_and_param_count():
    layer = SeparableConv(8, 3, depth_multiplier=2)
    _, params = layer.init(KEY, (-1, 6, 6, 4))
    assert nn.param_count(params) == 3 * 3 * 4 * 2 + 4 * 2 * 8 + 8  # k²·C·m + C·m·O + O
    with pytest.raises(ValueError, match=r"SeparableConv: input shape \(-1, 6, 6, 4\) does not "
                                         r"match the kernel_size \(3, 3, 3\)"):
        SeparableConv(8, (3, 3, 3)).init(KEY, (-1, 6, 6, 4))
    with pytest.raises(ValueError, match=r"SeparableConv: `depth_multiplier` must be >= 1"):
        SeparableConv(8, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match=r"layer 0 \(SeparableConv\).*has no spatial dim"):
        nn.serial(layer).init(KEY, (-1, 4))


def test_upsample_layer():
    layer = Upsample((2, 3), method="bilinear")
    shape, params = layer.init(KEY, (-1, 3, 2, 4))
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 3, 2, 4)), jnp.float32)
    y = layer.apply(params, x)
    assert shape == (-1, 6, 6, 4) and params == {}
    np.testing.assert_array_equal(y, upsample(x, (2, 3), method="bilinear"))
    assert Upsample(2).init(KEY, (-1, 5, 4))[0] == (-1, 10, 4)
    with pytest.raises(ValueError, match=r"Upsample: `method` must be one of"):
        Upsample(2, method="cubic")
    with pytest.raises(ValueError, match=r"layer 0 \(Upsample\).*does not match the scale "
                                         r"\(2, 2\)"):
        nn.serial(Upsample((2, 2))).init(KEY, (-1, 5, 4))


def test_layers_compose_and_take_keys_through_serial():
    model = nn.serial(SeparableConv(4, 3), SpatialDropout(0.5), nn.Relu, Upsample(2),
                      nn.residual(nn.serial(nn.Conv(4, (3, 3), padding="SAME"), DropPath(0.5))))
    shape, params = model.init(KEY, (-1, 4, 4, 2))
    x = jnp.ones((3, 4, 4, 2), jnp.float32)
    train = jax.jit(lambda p, x, k: model.apply(p, x, key=k, train=True))
    y1, y2 = train(params, x, jax.random.key(1)), train(params, x, jax.random.key(2))
    assert shape == (-1, 8, 8, 4) and y1.shape == (3, 8, 8, 4)
    assert not np.allclose(y1, y2)  # different keys, different masks
    plain = nn.serial(SeparableConv(4, 3), nn.Identity, nn.Relu, Upsample(2),
                      nn.residual(nn.serial(nn.Conv(4, (3, 3), padding="SAME"), nn.Identity)))
    np.testing.assert_array_equal(jax.jit(model.apply)(params, x),  # evaluation
                                  jax.jit(plain.apply)(params, x))
    with pytest.raises(ValueError, match=r"layer 1 \(SpatialDropout\).*needs a PRNG `key`"):
        model.apply(params, x, train=True)
