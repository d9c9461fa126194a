"""Whole models against their lax twin: random small architectures (conv, pools,
batch, layer, group and instance norm, smooth activations, residual blocks, dense
heads) give the same loss, gradients and updated state in f64 — and residual blocks
and the state API on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import lax_twin_with_state

import jcnn
from jcnn import nn
from jcnn._nn_vocab import (
    Elu,
    Gelu,
    GroupNorm,
    HardSwish,
    InstanceNorm,
    LayerNorm,
    Silu,
    Softplus,
)

KEY = jax.random.key(0)


@st.composite
def models(draw):
    """``(model, input_shape)``: a stack whose every layer fits the shape reaching it."""
    n, size, c_in = draw(st.integers(2, 3)), draw(st.integers(4, 8)), draw(st.integers(1, 3))
    layers, h, c = [], size, c_in  # c: the channels reaching the next layer
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "bn", "relu", "pool", "residual", "norm",
                                     "activation"]))
        if kind == "conv":
            k = draw(st.integers(1, min(3, h)))
            s = draw(st.integers(1, 2))
            pad = draw(st.sampled_from(["VALID", "SAME", 1]))
            c = draw(st.integers(1, 4))
            layers.append(nn.Conv(c, (k, k), stride=s, padding=pad,
                                  use_bias=draw(st.booleans())))
            h = {"VALID": (h - k) // s + 1, "SAME": -(-h // s), 1: (h + 2 - k) // s + 1}[pad]
        elif kind == "bn":
            layers.append(nn.BatchNorm(momentum=draw(st.sampled_from([0.0, 0.5, 0.9]))))
        elif kind == "relu":
            layers.append(nn.Relu)
        elif kind == "norm":
            groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
            layers.append(draw(st.sampled_from([LayerNorm(), GroupNorm(groups),
                                                InstanceNorm(eps=1e-3)])))
        elif kind == "activation":
            layers.append(draw(st.sampled_from([Gelu(), Gelu(approximate=True), Silu(),
                                                Elu(0.5), Softplus(), HardSwish()])))
        elif kind == "pool" and h >= 2:
            layers.append(draw(st.sampled_from([nn.MaxPool((2, 2)), nn.AvgPool((2, 2))])))
            h //= 2
        elif kind == "residual":
            s = draw(st.integers(1, 2))
            c_out = draw(st.integers(1, 4))
            block = nn.serial(nn.Conv(c_out, (3, 3), stride=s, padding=1), nn.BatchNorm(),
                              nn.Relu, nn.Conv(c_out, (3, 3), padding=1))
            needs_projection = s != 1 or c_out != c
            shortcut = (nn.serial(nn.Conv(c_out, (1, 1), stride=s, use_bias=False),
                                  nn.BatchNorm()) if needs_projection else None)
            layers.append(nn.residual(block, shortcut))
            h, c = -(-h // s), c_out
    head = draw(st.sampled_from(["gap", "flatten"]))
    layers += [nn.GlobalAvgPool if head == "gap" else nn.Flatten]
    if draw(st.booleans()):
        layers += [nn.Dense(5), nn.BatchNorm(), nn.Relu]
    layers.append(nn.Dense(4))
    return nn.serial(*layers), (n, size, size, c_in), draw(st.integers(0, 99))


def _standardise(x, axes, eps):
    mean = jnp.mean(x, axes, keepdims=True)
    return (x - mean) / jnp.sqrt(jnp.mean((x - mean) ** 2, axes, keepdims=True) + eps)


def _group_norm(x, groups, eps):
    n, c = x.shape[0], x.shape[-1]
    xg = x.reshape(n, -1, groups, c // groups)  # (N, positions, G, C/G)
    return _standardise(xg, (1, 3), eps).reshape(x.shape)


_PLAIN = {  # the new layers by their formulas (jax.nn's activations)
    "LayerNorm": lambda cfg, x: _standardise(x, (-1,), cfg["eps"]),
    "GroupNorm": lambda cfg, x: _group_norm(x, cfg["groups"], cfg["eps"]),
    "InstanceNorm": lambda cfg, x: _group_norm(x, x.shape[-1], cfg["eps"]),
    "Gelu": lambda cfg, x: jax.nn.gelu(x, approximate=cfg["approximate"]),
    "Silu": lambda cfg, x: jax.nn.silu(x),
    "Elu": lambda cfg, x: jax.nn.elu(x, cfg["alpha"]),
    "Softplus": lambda cfg, x: jax.nn.softplus(x),
    "HardSwish": lambda cfg, x: jax.nn.hard_swish(x),
}


def _twin(model):
    """``model`` (a ``serial``) rebuilt layer by layer: the oracles' lax twin, and the
    plain formulas of ``_PLAIN`` for the normalisation and activation layers."""
    def plain(layer):
        cfg, f = dict(layer.config), _PLAIN[layer.name]

        def run(params, state, x, *, train):
            y = f(cfg, x)
            return (y * params["scale"] + params["offset"] if params else y), state
        return run

    runs = [plain(child) if child.name in _PLAIN else lax_twin_with_state(child)
            for child in model.layers]

    def apply(params, state, x, *, train=False):
        states, new = state if model.stateful else ({},) * len(runs), []
        for run, p, s in zip(runs, params, states, strict=True):
            x, s = run(p, s, x, train=train)
            new.append(s)
        return x, tuple(new)

    return apply


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


@settings(max_examples=max(50, settings.default.max_examples // 3))
@given(models())
def test_random_models_match_their_lax_twin(drawn):
    """Training-mode loss, every parameter's gradient and the updated running
    statistics; then the evaluation-mode loss with those statistics (f64)."""
    model, shape, seed = drawn
    _, params, state = nn.init_with_state(model, jax.random.key(seed), (-1, *shape[1:]))
    params, state = _f64(params), _f64(state)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = rng.integers(0, 4, shape[0])
    twin = _twin(model)

    def losses(apply):
        def train_loss(params):
            logits, new_state = apply(params, state, x, train=True)
            return jcnn.softmax_cross_entropy(logits, y), new_state

        (loss, new_state), grads = jax.value_and_grad(train_loss, has_aux=True)(params)
        eval_loss = jcnn.softmax_cross_entropy(apply(params, new_state, x, train=False)[0], y)
        return loss, grads, new_state, eval_loss

    def ours(params, state, x, *, train):
        return nn.apply_with_state(model, params, state, x, train=train)

    got, want = jax.jit(lambda: (losses(ours), losses(twin)))()
    for name, a, b in zip(("loss", "grads", "state", "eval loss"), got, want):
        flat_a, flat_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
        assert len(flat_a) == len(flat_b), name
        for u, v in zip(flat_a, flat_b):
            np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-10, err_msg=name)


# ----------------------------------------------------------------- residual
def test_identity_residual_adds_the_input():
    block = nn.serial(nn.Conv(3, (3, 3), padding="SAME"), nn.Relu)
    layer = nn.residual(block)
    _, params = layer.init(KEY, (-1, 5, 5, 3))
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 3), jnp.float32)
    np.testing.assert_allclose(layer.apply(params, x),
                               block.apply(params["block"], x) + x, rtol=1e-6)
    assert params["shortcut"] == {}


def test_residual_gradient_reaches_both_branches():
    """d(block(x) + x)/dx = J_block + I: with a zero block the gradient is the identity's."""
    block = nn.Conv(2, (3, 3), padding="SAME", w_init=jax.nn.initializers.zeros)
    layer = nn.residual(block)
    _, params = layer.init(KEY, (-1, 4, 4, 2))
    x = jax.random.normal(jax.random.key(2), (1, 4, 4, 2), jnp.float32)
    g = jax.grad(lambda x: jnp.sum(layer.apply(params, x) * x))(x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)


def test_residual_shape_mismatch_names_both_branches():
    layer = nn.residual(nn.Conv(8, (3, 3), stride=2, padding=1))
    with pytest.raises(ValueError, match=r"residual: on input shape \(-1, 8, 8, 4\) the block "
                                         r"gives \(-1, 4, 4, 8\) but the shortcut \(Identity\) "
                                         r"gives \(-1, 8, 8, 4\).*projection"):
        layer.init(KEY, (-1, 8, 8, 4))
    with pytest.raises(TypeError, match="residual: argument 1 is .*not a Layer"):
        nn.residual(nn.Relu, shortcut=nn.Conv)


def test_summary_shows_residual_branches_and_state():
    block = nn.serial(nn.Conv(8, (3, 3), stride=2, padding=1), nn.BatchNorm(), nn.Relu)
    model = nn.serial(nn.residual(block, nn.Conv(8, (1, 1), stride=2)), nn.GlobalAvgPool,
                      nn.Dense(3))
    rows = nn.summary_rows(model, (-1, 8, 8, 4))
    assert [r["name"] for r in rows] == ["0.0.0: Conv", "0.0.1: BatchNorm", "0.0.2: Relu",
                                         "0.1: Conv", "1: GlobalAvgPool", "2: Dense"]
    assert rows[3]["input_shape"] == (-1, 8, 8, 4)  # the shortcut reads the block's input
    assert rows[4]["input_shape"] == (-1, 4, 4, 8)
    assert (rows[1]["params"], rows[1]["state"]) == (16, 16)
    table = nn.summary(model, (-1, 8, 8, 4))
    assert table.splitlines()[0].split()[:4] == ["layer", "output", "shape", "params"]
    assert "state" in table.splitlines()[0]
    total = table.splitlines()[-1].split()
    assert total[0] == "total" and total[1] == f"{4 * 9 * 8 + 8 + 16 + 4 * 8 + 8 + 8 * 3 + 3:,}"
    assert total[2] == "16"


def test_stateless_models_keep_their_simple_api():
    model = nn.serial(nn.Conv(2, (3, 3)), nn.Relu, nn.Flatten, nn.Dense(2))
    assert not model.stateful
    shape, params = model.init(KEY, (-1, 5, 5, 1))
    y = model.apply(params, jnp.ones((1, 5, 5, 1), jnp.float32))
    _, params2, state = nn.init_with_state(model, KEY, (-1, 5, 5, 1))
    y2, state2 = nn.apply_with_state(model, params2, state, jnp.ones((1, 5, 5, 1), jnp.float32))
    np.testing.assert_array_equal(y, y2)
    assert state == state2 == {}
    assert nn.serial(nn.BatchNorm(), nn.Relu).stateful
