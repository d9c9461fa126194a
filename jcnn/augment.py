"""Random image augmentations as pure, jittable functions of a PRNG key.

Each takes ``(key, x)`` with ``x`` a channels-last batch ``(N, H, W, C)`` and
returns a batch of the same shape, drawing independently per image; :func:`fit
<jcnn.training.fit>` applies one inside its jitted train step
(``fit(..., augment=...)``), so augmentation costs no host work.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["flip_and_shift", "random_flip", "random_shift"]


def _check(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expects a batch of images (N, H, W, C), got shape "
                         f"{tuple(x.shape)}")


def random_flip(key, x):
    """Mirror each image left–right with probability 1/2.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jcnn.augment import random_flip
      >>> x = jnp.arange(3.0).reshape(1, 1, 3, 1)
      >>> sorted({tuple(random_flip(jax.random.key(k), x)[0, 0, :, 0].tolist()) for k in range(8)})
      [(0.0, 1.0, 2.0), (2.0, 1.0, 0.0)]
    """
    _check("random_flip", x)
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1, :], x)


def random_shift(key, x, max_shift: int = 2):
    """Translate each image by up to ``max_shift`` pixels along each spatial axis
    (independently drawn), filling with zeros — a random crop of the image padded
    by ``max_shift`` on every side.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jcnn.augment import random_shift
      >>> x = jnp.ones((4, 5, 5, 1))
      >>> y = random_shift(jax.random.key(0), x, max_shift=1)
      >>> y.shape, bool(jnp.all(y.sum((1, 2, 3)) >= 16))  # at least a 4×4 block survives
      ((4, 5, 5, 1), True)
    """
    _check("random_shift", x)
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"random_shift: `max_shift` must be an int >= 0, got {max_shift!r}")
    if max_shift == 0:
        return x
    n, h, w, c = x.shape
    m = max_shift
    padded = jnp.pad(x, ((0, 0), (m, m), (m, m), (0, 0)))
    starts = jax.random.randint(key, (n, 2), 0, 2 * m + 1)

    def crop(img, start):
        return lax.dynamic_slice(img, (start[0], start[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, starts)


def flip_and_shift(key, x, max_shift: int = 2):
    """:func:`random_flip` then :func:`random_shift` — the usual augmentation for
    small image classifiers (CIFAR, Fashion-MNIST).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jcnn.augment import flip_and_shift
      >>> flip_and_shift(jax.random.key(0), jnp.ones((2, 6, 6, 3))).shape
      (2, 6, 6, 3)
    """
    k1, k2 = jax.random.split(key)
    return random_shift(k2, random_flip(k1, x), max_shift)
