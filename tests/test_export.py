"""Shipping a model: ``jax.export`` of jcnn functions and whole models for CPU, CUDA
and TPU at once, with a symbolic batch size (and symbolic image sizes where the
model allows), serialized and deserialized; the deserialized program run on this
CPU must give what ``jax.jit`` of the same function gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import jcnn
from jcnn import nn

PLATFORMS = ("cpu", "cuda", "tpu")
KEY = jax.random.key(0)


def _shipped(f, *specs):
    """``f`` exported for every platform on ``specs``, serialized and read back."""
    exported = export.export(jax.jit(f), platforms=PLATFORMS)(*specs)
    assert exported.platforms == PLATFORMS
    return export.deserialize(exported.serialize())


def _spec(shape, dtype=jnp.float32):
    dims = export.symbolic_shape(shape) if isinstance(shape, str) else shape
    return jax.ShapeDtypeStruct(dims, dtype)


def _specs(tree):
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _same(shipped, f, *args):
    for got, want in zip(jax.tree_util.tree_leaves(shipped.call(*args)),
                         jax.tree_util.tree_leaves(jax.jit(f)(*args)), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _x(*shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _classifier():
    return nn.serial(nn.Conv(4, 3, padding="SAME", use_bias=False), nn.BatchNorm(), nn.Relu,
                     nn.MaxPool(2), nn.Conv(4, 3, stride=2, padding=1), nn.Relu,
                     nn.AvgPool(2), nn.Flatten, nn.Dense(3))


def test_a_classifier_ships_with_a_symbolic_batch():
    model = _classifier()
    _, params, state = nn.init_with_state(model, KEY, (-1, 8, 8, 2))

    def infer(p, s, x):
        return model.apply(p, x, state=s)[0]

    shipped = _shipped(infer, _specs(params), _specs(state), _spec("b, 8, 8, 2"))
    for n in (1, 5):
        _same(shipped, infer, params, state, _x(n, 8, 8, 2))


def test_a_training_step_ships_with_a_symbolic_batch():
    """The loss and its gradient in training mode: jcnn's hand-written backward
    passes and batch statistics over a batch of unknown size."""
    model = _classifier()
    _, params, state = nn.init_with_state(model, KEY, (-1, 8, 8, 2))

    def grads(p, s, x, y):
        def loss(p):
            out, new = model.apply(p, x, state=s, train=True)
            return jcnn.softmax_cross_entropy(out, y), new
        return jax.value_and_grad(loss, has_aux=True)(p)

    x = _spec("b, 8, 8, 2")
    y = jax.ShapeDtypeStruct(x.shape[:1], jnp.int32)  # the same symbolic b
    shipped = _shipped(grads, _specs(params), _specs(state), x, y)
    _same(shipped, grads, params, state, _x(3, 8, 8, 2), jnp.array([0, 2, 1], jnp.int32))


def test_a_fully_convolutional_model_ships_with_symbolic_image_sizes():
    model = nn.serial(nn.Conv(4, 3, padding="SAME"), nn.BatchNorm(), nn.Relu,
                      nn.Conv(4, 3, padding=1), nn.Relu, nn.GlobalAvgPool, nn.Dense(3))
    _, params, state = nn.init_with_state(model, KEY, (-1, 8, 8, 1))

    def infer(p, s, x):
        return model.apply(p, x, state=s)[0]

    shipped = _shipped(infer, _specs(params), _specs(state), _spec("b, h, w, 1"))
    for shape in ((2, 8, 8, 1), (1, 5, 11, 1)):
        _same(shipped, infer, params, state, _x(*shape))


W = _x(3, 3, 2, 4, seed=2)
WT = _x(2, 2, 4, 2, seed=3)


@pytest.mark.parametrize("name,f,args", [
    ("conv", lambda x, w: jcnn.conv(x, w, padding="SAME"), ((2, 6, 6, 2), W)),
    ("conv strided", lambda x, w: jcnn.conv(x, w, stride=2, padding=1), ((2, 7, 7, 2), W)),
    ("conv_transpose", lambda x, w: jcnn.conv_transpose(x, w, stride=2), ((2, 3, 3, 2), WT)),
    ("max_pool", lambda x: jcnn.max_pool(x, (2, 2)), ((2, 6, 6, 3),)),
    ("avg_pool", lambda x: jcnn.avg_pool(x, (3, 3), stride=2, padding=1), ((2, 7, 7, 3),)),
    ("batch_norm", lambda x: jcnn.batch_norm(x, jnp.ones(3), jnp.zeros(3)), ((4, 5, 5, 3),)),
])
def test_single_functions_ship_with_a_symbolic_batch(name, f, args):
    x = _x(*args[0])
    rest = args[1:]
    specs = [_spec(f"b, {', '.join(map(str, args[0][1:]))}"), *(_specs(a) for a in rest)]
    shipped = _shipped(f, *specs)
    _same(shipped, f, x, *rest)
    # and its gradient, through the hand-written backward pass
    def g(x, *rest):
        return jax.grad(lambda x: jnp.sum(jnp.sin(jax.tree_util.tree_leaves(f(x, *rest))[0])))(x)

    _same(_shipped(g, *specs), g, x, *rest)
