"""Augmentations: every output image is an allowed transform of its input,
draws differ per image, and the functions jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn.augment import flip_and_shift, random_flip, random_shift


def _images(n=16, h=5, w=6, c=2, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((n, h, w, c)), jnp.float32)


def test_random_flip_mirrors_some_images_and_keeps_the_rest():
    x = _images()
    y = jax.jit(random_flip)(jax.random.key(1), x)
    same = [bool(jnp.array_equal(a, b)) for a, b in zip(x, y)]
    mirrored = [bool(jnp.array_equal(a[:, ::-1], b)) for a, b in zip(x, y)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)  # 16 fair coins: both outcomes (seed fixed)


def _shifted(img, dy, dx, m):
    h, w, _ = img.shape
    padded = np.pad(np.asarray(img), ((m, m), (m, m), (0, 0)))
    return padded[dy:dy + h, dx:dx + w]


@pytest.mark.parametrize("m", [1, 2])
def test_random_shift_is_a_crop_of_the_zero_padded_image(m):
    x = _images(n=12)
    y = np.asarray(jax.jit(random_shift, static_argnums=2)(jax.random.key(3), x, m))
    offsets = []
    for a, b in zip(np.asarray(x), y):
        hits = [(dy, dx) for dy in range(2 * m + 1) for dx in range(2 * m + 1)
                if np.array_equal(_shifted(a, dy, dx, m), b)]
        assert hits, "an output that is no shift of its input"
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # drawn per image


def test_zero_shift_is_the_identity_and_combined_keeps_shape():
    x = _images(n=3)
    assert random_shift(jax.random.key(0), x, 0) is x
    y = flip_and_shift(jax.random.key(0), x)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"random_flip: expects a batch of images \(N, H, W, C\)"):
        random_flip(jax.random.key(0), jnp.ones((4, 4)))
    with pytest.raises(ValueError, match="random_shift: `max_shift` must be an int >= 0"):
        random_shift(jax.random.key(0), jnp.ones((1, 4, 4, 1)), -1)
