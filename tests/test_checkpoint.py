"""Checkpoints (jcnn/checkpoint.py): round trips, corruption, interrupted saves."""

import os

import jax
import numpy as np
import optax
import pytest

from jcnn import checkpoint, nn

KEY = jax.random.key(0)


def _small_model():
    return nn.serial(nn.Conv(8, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)), nn.Flatten,
                     nn.Dense(10))


def _tree():
    _, params = _small_model().init(KEY, (-1, 8, 8, 1))
    return params, optax.adam(1e-3).init(params)


def test_checkpoint_round_trip(tmp_path):
    tree = _tree()
    checkpoint.save(tmp_path / "c.npz", tree, metadata={"epoch": 3})
    back, meta = checkpoint.restore(tmp_path / "c.npz", tree)
    assert meta == {"epoch": 3}
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(tree)


def test_checkpoint_corrupt_and_mismatched(tmp_path):
    tree = _tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or not a jcnn checkpoint"):
        checkpoint.restore(path, tree)
    checkpoint.save(path, tree)
    other = nn.serial(nn.Conv(4, (3, 3)), nn.Flatten, nn.Dense(10)).init(KEY, (-1, 8, 8, 1))[1]
    with pytest.raises(checkpoint.CheckpointError, match="different structure|leaf"):
        checkpoint.restore(path, other)
    wide = _small_model().init(KEY, (-1, 16, 16, 1))[1]  # same structure, other shapes
    checkpoint.save(tmp_path / "w.npz", (wide, optax.adam(1e-3).init(wide)))
    with pytest.raises(checkpoint.CheckpointError, match=r"leaf .* is float32\[512, 10\], "
                                                         r"expected float32\[128, 10\]"):
        checkpoint.restore(tmp_path / "w.npz", tree)
    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path / "missing.npz", tree)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tree = _tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree, metadata={"epoch": 1})
    real_savez = np.savez

    def dying_savez(f, **arrays):  # writes part of the file, then the process "dies"
        real_savez(f, **dict(list(arrays.items())[:2]))
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, jax.tree_util.tree_map(lambda a: a + 1, tree),
                        metadata={"epoch": 2})
    monkeypatch.undo()
    back, meta = checkpoint.restore(path, tree)
    assert meta == {"epoch": 1}
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(back)[0],
                                  jax.tree_util.tree_leaves(tree)[0])
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temp file left behind



def _bn_model():
    return nn.serial(nn.Conv(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu, nn.Flatten,
                     nn.Dense(3))


def test_params_alone_round_trip_without_a_template(tmp_path):
    _, params, state = nn.init_with_state(_bn_model(), KEY, (-1, 6, 6, 2))
    checkpoint.save_params(tmp_path / "w.npz", params, state)
    back, back_state = checkpoint.load_params(tmp_path / "w.npz")
    for want, got in ((params, back), (state, back_state)):
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
        for a, b in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    checkpoint.save_params(tmp_path / "p.npz", params)  # no state: None comes back
    assert checkpoint.load_params(tmp_path / "p.npz")[1] is None


def test_training_checkpoint_gives_its_weights_without_the_optimizer(tmp_path):
    """fit's checkpoint holds {"params", "state", "opt_state"}: load_params reads the
    first two without an optimizer to rebuild; restore with (params, state) says so."""
    _, params, state = nn.init_with_state(_bn_model(), KEY, (-1, 6, 6, 2))
    tree = {"params": params, "state": state, "opt_state": optax.adam(1e-3).init(params)}
    checkpoint.save(tmp_path / "c.npz", tree, metadata={"epoch": 2, "history": {}})
    back, back_state = checkpoint.load_params(tmp_path / "c.npz")
    for a, b in zip(jax.tree_util.tree_leaves((params, state)),
                    jax.tree_util.tree_leaves((back, back_state)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.read_metadata(tmp_path / "c.npz") == {"epoch": 2, "history": {}}
    with pytest.raises(checkpoint.CheckpointError, match="use checkpoint.load_params"):
        checkpoint.restore(tmp_path / "c.npz", (params, state))


def test_load_params_refuses_what_it_cannot_rebuild(tmp_path):
    checkpoint.save(tmp_path / "o.npz", _tree())  # (params, adam state): no "params" entry
    with pytest.raises(checkpoint.CheckpointError, match="holds no model parameters"):
        checkpoint.load_params(tmp_path / "o.npz")
    _, params = _small_model().init(KEY, (-1, 8, 8, 1))
    checkpoint.save(tmp_path / "n.npz", {"params": optax.adam(1e-3).init(params)})
    with pytest.raises(checkpoint.CheckpointError, match=r"holds params\[0\] as a custom "
                                                         r"pytree node"):
        checkpoint.load_params(tmp_path / "n.npz")
