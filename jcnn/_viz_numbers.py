"""The numbers behind jcnn's pictures, without matplotlib: the article's classic
kernels, how often each pixel is read, a conv layer's parameters against a
dense layer's, and where max pooling routes its gradients.  Re-exported by
:mod:`jcnn.viz`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .convolution import conv
from .padding import output_size
from .pooling import max_pool2d

__all__ = ["CLASSIC_KERNELS", "conv_vs_dense_params", "max_pool_routes", "pixel_usage"]


def _gauss(n=5, sigma=1.0):
    r = np.arange(n) - n // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


CLASSIC_KERNELS = {
    "Sobel (horizontal edges)": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float),
    "Sobel (vertical edges)": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], float),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float),
    "box blur 5x5": np.full((5, 5), 1 / 25),
    "Gaussian blur 5x5": _gauss(),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float),
}


# ------------------------------------------------------------------ numbers
def pixel_usage(n: int, f: int, padding="VALID") -> np.ndarray:
    """How many windows each pixel of an ``n×n`` image takes part in (§4).

    Computed with jcnn's own backward: the gradient of Σ conv(x, ones) with
    respect to ``x`` counts, for each pixel, the windows that read it.

    Examples:
      >>> from jcnn import viz
      >>> viz.pixel_usage(4, 3).tolist()[0]
      [1, 2, 2, 1]
    """
    x = jnp.zeros((1, n, n, 1), jnp.float32)
    w = jnp.ones((f, f, 1, 1), jnp.float32)
    g = jax.grad(lambda x: jnp.sum(conv(x, w, padding=padding)))(x)
    return np.asarray(g[0, :, :, 0]).round().astype(int)


def conv_vs_dense_params(n: int, c_in: int, f: int, c_out: int, padding="SAME") -> dict:
    """Parameters of an ``f×f`` conv layer vs a dense layer with the same input and
    output sizes, for an ``n×n×c_in`` input (§8).

    Examples:
      >>> from jcnn import viz
      >>> viz.conv_vs_dense_params(28, 1, 3, 8)
      {'conv': 80, 'dense': 4923520, 'out': (28, 28, 8)}
    """
    m = output_size(n, f, padding=padding)
    conv_params = f * f * c_in * c_out + c_out
    n_in, n_out = n * n * c_in, m * m * c_out
    return {"conv": conv_params, "dense": n_in * n_out + n_out, "out": (m, m, c_out)}


def max_pool_routes(x: np.ndarray, window: int = 2, stride: int | None = None) -> np.ndarray:
    """Which element of each window receives the gradient (the §11 mask).

    Returns, for a 2-D input, an int array: at each input position, how many
    windows route their gradient there (the first maximum in row-major order).

    Examples:
      >>> import numpy as np
      >>> from jcnn import viz
      >>> viz.max_pool_routes(np.array([[1.0, 2.0], [3.0, 3.0]])).tolist()
      [[0, 0], [1, 0]]
    """
    x = jnp.asarray(x, jnp.float32)[None, :, :, None]
    y, vjp = jax.vjp(lambda x: max_pool2d(x, window, stride=stride), x)
    (g,) = vjp(jnp.ones_like(y))
    return np.asarray(g[0, :, :, 0]).round().astype(int)


# ------------------------------------------------------------------ figures
