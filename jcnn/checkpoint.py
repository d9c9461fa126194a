"""Save and restore pytrees (params, optimizer state) atomically.

A checkpoint is one ``.npz`` file: the leaves in flatten order, their
key-paths, and a JSON metadata dict.  :func:`save` writes a temporary file in
the same directory and renames it over the target, so an interrupted save
leaves the previous checkpoint intact.  :func:`restore` checks the file
against a template pytree and raises :class:`CheckpointError` (a
``ValueError``) for a corrupt file or a mismatched structure, shape or dtype.
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

__all__ = ["CheckpointError", "restore", "save"]


class CheckpointError(ValueError):
    """A checkpoint that is corrupt or does not match the expected pytree."""


def _paths_and_leaves(tree):
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in flat], [leaf for _, leaf in flat]


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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            paths = json.loads(str(data["__paths__"]))
            meta = json.loads(str(data["__meta__"]))
            leaves = [data[f"leaf_{i}"] for i in range(len(paths))]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint: {path} is corrupt or not a jcnn checkpoint "
                              f"({type(e).__name__}: {e})") from None
    want_paths, want_leaves = _paths_and_leaves(like)
    if paths != want_paths:
        extra = sorted(set(paths) ^ set(want_paths))[:3]
        raise CheckpointError(
            f"checkpoint: {path} holds a different structure ({len(paths)} leaves, "
            f"expected {len(want_paths)}; differing paths e.g. {extra})"
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
