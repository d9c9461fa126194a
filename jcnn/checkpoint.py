"""Save and restore pytrees (params, optimizer state) atomically.

A checkpoint is one ``.npz`` file: the leaves in flatten order, their
key-paths, the tree's structure where it is made of dicts, lists and tuples,
and a JSON metadata dict.  :func:`save` writes a temporary file in the same
directory and renames it over the target, so an interrupted save leaves the
previous checkpoint intact.  :func:`restore` checks the file against a
template pytree and raises :class:`CheckpointError` (a ``ValueError``) for a
corrupt file or a mismatched structure, shape or dtype.

:func:`save_params` / :func:`load_params` keep a model's parameters (and
state) alone, with no template needed to read them back; :func:`load_params`
also reads them out of ``fit``'s training checkpoints, which add the optimizer
state for resuming.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = ["CheckpointError", "load_params", "read_metadata", "restore", "save", "save_params"]


class CheckpointError(ValueError):
    """A checkpoint that is corrupt or does not match the expected pytree."""


def _paths_and_leaves(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in flat], [leaf for _, leaf in flat]


def _skeleton(tree):
    """``tree`` as JSON: dicts (str keys), lists, tuples and None kept, each leaf its
    index in flatten order, any other node (an optax state) ``{"opaque": indices}``."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    numbered = jax.tree_util.tree_unflatten(treedef, list(range(len(leaves))))

    def encode(node):
        if node is None or type(node) is int:
            return node
        if type(node) is dict and all(isinstance(k, str) for k in node):
            return {"dict": {k: encode(v) for k, v in node.items()}}
        if type(node) in (list, tuple):
            return {type(node).__name__: [encode(v) for v in node]}
        return {"opaque": jax.tree_util.tree_leaves(node)}

    return encode(numbered)


def _build(skeleton, leaves, path, where):
    """The tree ``skeleton`` describes, with its leaves from ``leaves``."""
    if skeleton is None or isinstance(skeleton, int):
        return None if skeleton is None else jax.numpy.asarray(leaves[skeleton])
    (kind, body), = skeleton.items()
    if kind == "dict":
        return {k: _build(v, leaves, f"{path}[{k!r}]", where) for k, v in body.items()}
    if kind in ("list", "tuple"):
        items = [_build(v, leaves, f"{path}[{i}]", where) for i, v in enumerate(body)]
        return items if kind == "list" else tuple(items)
    raise CheckpointError(f"checkpoint: {where} holds {path} as a custom pytree node; read it "
                          f"with checkpoint.restore(path, like) and a template")


def save(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> None:
    """Write ``tree``'s leaves and ``metadata`` to ``path`` atomically.

    Examples:
      >>> import pathlib, tempfile, jax.numpy as jnp
      >>> from jcnn import checkpoint
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'ckpt.npz'
      >>> checkpoint.save(path, {'w': jnp.ones(3)}, metadata={'epoch': 2})
      >>> tree, meta = checkpoint.restore(path, {'w': jnp.zeros(3)})
      >>> tree['w'].tolist(), meta
      ([1.0, 1.0, 1.0], {'epoch': 2})
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths, leaves = _paths_and_leaves(tree)
    arrays = {f"leaf_{i}": np.asarray(jax.device_get(x)) for i, x in enumerate(leaves)}
    arrays["__paths__"] = np.array(json.dumps(paths))
    arrays["__skeleton__"] = np.array(json.dumps(_skeleton(tree)))
    arrays["__meta__"] = np.array(json.dumps(metadata or {}))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Read ``path`` into a pytree shaped like ``like``; returns ``(tree, metadata)``.

    Examples:
      >>> import pathlib, tempfile, jax.numpy as jnp
      >>> from jcnn import checkpoint
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'ckpt.npz'
      >>> checkpoint.save(path, (jnp.arange(2.0),))
      >>> checkpoint.restore(path, (jnp.zeros(2),))[0][0].tolist()
      [0.0, 1.0]
    """
    path = Path(path)
    paths, leaves, meta, _ = _read(path)
    want_paths, want_leaves = _paths_and_leaves(like)
    if paths != want_paths:
        extra = sorted(set(paths) ^ set(want_paths))[:3]
        raise CheckpointError(
            f"checkpoint: {path} holds a different structure ({len(paths)} leaves, "
            f"expected {len(want_paths)}; differing paths e.g. {extra}); for a model's "
            f"parameters alone, without the optimizer state, use checkpoint.load_params(path)"
        )
    for p, got, want in zip(paths, leaves, want_leaves):
        want_shape, want_dtype = np.shape(want), np.asarray(want).dtype
        if got.shape != want_shape or got.dtype != want_dtype:
            raise CheckpointError(
                f"checkpoint: {path} leaf {p} is {got.dtype}{list(got.shape)}, "
                f"expected {want_dtype}{list(want_shape)}"
            )
    treedef = jax.tree_util.tree_structure(like)
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x) for x in leaves]), meta


def _read(path: Path):
    """``(paths, leaves, metadata, skeleton or None)`` of the checkpoint at ``path``."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            paths = json.loads(str(data["__paths__"]))
            meta = json.loads(str(data["__meta__"]))
            leaves = [data[f"leaf_{i}"] for i in range(len(paths))]
            skeleton = (json.loads(str(data["__skeleton__"])) if "__skeleton__" in data.files
                        else None)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint: {path} is corrupt or not a jcnn checkpoint "
                              f"({type(e).__name__}: {e})") from None
    return paths, leaves, meta, skeleton


def save_params(path: str | os.PathLike, params: Any, state: Any = None) -> None:
    """Write a model's ``params`` (and ``state``, e.g. batch norm's running statistics)
    to ``path`` atomically — no optimizer state; :func:`load_params` reads them back
    without a template.

    Examples:
      >>> import pathlib, tempfile, jax, jcnn
      >>> from jcnn import checkpoint, nn
      >>> model = nn.serial(nn.Conv(4, 3), nn.BatchNorm(), nn.Flatten, nn.Dense(2))
      >>> _, params, state = nn.init_with_state(model, jax.random.key(0), (-1, 5, 5, 1))
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'weights.npz'
      >>> checkpoint.save_params(path, params, state)
      >>> params2, state2 = checkpoint.load_params(path)
      >>> params2[0]["w"].shape, state2[1]["mean"].shape
      ((3, 3, 1, 4), (4,))
    """
    save(path, {"params": params, "state": state}, metadata={"kind": "params"})


def load_params(path: str | os.PathLike) -> tuple[Any, Any]:
    """``(params, state)`` from a :func:`save_params` file or a ``fit`` checkpoint (its
    optimizer state is left out); ``state`` is what was saved (``None`` if nothing).

    Examples:
      >>> import pathlib, tempfile, jax.numpy as jnp
      >>> from jcnn import checkpoint
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'weights.npz'
      >>> checkpoint.save_params(path, ({"w": jnp.ones(2)}, {}))
      >>> (p, rest), state = checkpoint.load_params(path)
      >>> p["w"].tolist(), rest, state
      ([1.0, 1.0], {}, None)
    """
    path = Path(path)
    _, leaves, _, skeleton = _read(path)
    body = skeleton.get("dict") if isinstance(skeleton, dict) else None
    if body is None or "params" not in body:
        raise CheckpointError(f"checkpoint: {path} holds no model parameters to load alone "
                              f"(not written by save_params or fit); read it with "
                              f"checkpoint.restore(path, like)")
    params = _build(body["params"], leaves, "params", path)
    return params, _build(body.get("state"), leaves, "state", path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict saved with the checkpoint at ``path`` (``fit``'s: the epoch,
    the history and the run's settings).

    Examples:
      >>> import pathlib, tempfile, jax.numpy as jnp
      >>> from jcnn import checkpoint
      >>> path = pathlib.Path(tempfile.mkdtemp()) / 'ckpt.npz'
      >>> checkpoint.save(path, [jnp.zeros(1)], metadata={'epoch': 4})
      >>> checkpoint.read_metadata(path)
      {'epoch': 4}
    """
    return _read(Path(path))[2]
