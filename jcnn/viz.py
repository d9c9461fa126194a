"""Pictures of the math, drawn with jcnn's own functions (needs matplotlib).

Every figure function takes its data, writes a PNG to ``path`` (Agg backend,
headless) and returns the numbers behind the picture so tests can check them.
The helpers that compute those numbers (``pixel_usage``, ``conv_vs_dense_params``,
``max_pool_routes``) need no matplotlib.

Numbers written on a heat map's cells are black or white, whichever contrasts more
with the cell (:mod:`jcnn._viz_style`); figures use matplotlib's constrained layout, which
keeps titles, colour bars and labels apart.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from . import _viz_style as style
from ._viz_numbers import CLASSIC_KERNELS, conv_vs_dense_params, max_pool_routes, pixel_usage
from ._viz_training import confusion_matrix, plot_confusion_matrix, plot_training_curves
from .convolution import conv, convolve2d, rot180
from .padding import output_size

__all__ = [
    "CLASSIC_KERNELS",
    "confusion_matrix",
    "conv_vs_dense_params",
    "max_pool_routes",
    "pixel_usage",
    "plot_backprop",
    "plot_confusion_matrix",
    "plot_filters_and_maps",
    "plot_image_as_tensor",
    "plot_kernel_gallery",
    "plot_pixel_usage",
    "plot_sharing",
    "plot_strides",
    "plot_training_curves",
    "plot_volumes",
]


def plot_image_as_tensor(photo: np.ndarray, digit: np.ndarray, path) -> dict:
    """§2: a colour photo as three channel matrices; a digit as its numbers.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_image_as_tensor(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8)), out / 'a.png')
      {'photo_shape': (8, 8, 3), 'digit_shape': (8, 8)}
    """
    fig, axes = style.figure(1, 5, figsize=(17, 3.6))
    axes[0].imshow(photo)
    axes[0].set_title(f"photo {photo.shape[0]}×{photo.shape[1]}×{photo.shape[2]}")
    for i, (ax, name, cmap) in enumerate(zip(axes[1:4], "RGB", ["Reds", "Greens", "Blues"])):
        im = ax.imshow(photo[:, :, i], cmap=cmap, vmin=0, vmax=255)
        ax.set_title(f"{name} channel (0–255)")
        fig.colorbar(im, ax=ax, fraction=0.046)
    im = axes[4].imshow(digit, cmap="gray_r")
    style.annotate(axes[4], im, digit, [[f"{int(v)}" for v in row] for row in digit], fontsize=7)
    axes[4].set_title(f"a digit is a {digit.shape[0]}×{digit.shape[1]} matrix")
    style.no_ticks(axes)
    style.save(fig, path)
    return {"photo_shape": photo.shape, "digit_shape": digit.shape}


def plot_kernel_gallery(gray: np.ndarray, path, kernels=None) -> dict:
    """§3: the image convolved (``jcnn.convolve2d``, mode "same") with classic kernels.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> len(viz.plot_kernel_gallery(np.zeros((16, 16)), out / 'k.png')) > 0
      True
    """
    kernels = kernels or CLASSIC_KERNELS
    cols = 1 + len(kernels)
    fig, axes = style.figure(2, cols, figsize=(2.3 * cols, 5.0),
                        gridspec_kw={"height_ratios": [3, 2]})
    axes[0, 0].imshow(gray, cmap="gray")
    axes[0, 0].set_title("input (grayscale)", fontsize=9)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.5, 0.5, "kernel h", ha="center", va="center", fontsize=10,
                    transform=axes[1, 0].transAxes)
    shapes = {}
    for i, (name, k) in enumerate(kernels.items(), start=1):
        out = np.asarray(convolve2d(jnp.asarray(gray, jnp.float32), jnp.asarray(k, jnp.float32),
                                    mode="same"))
        shapes[name] = out.shape
        axes[0, i].imshow(out, cmap="gray")
        axes[0, i].set_title(name, fontsize=9)
        top = np.abs(k).max()
        im = axes[1, i].imshow(k, cmap="coolwarm", vmin=-top, vmax=top)
        small = k.shape[0] > 3  # 5×5 kernels: two decimals, small type
        style.annotate(axes[1, i], im, k, [[f"{v:.2f}" if small else f"{v:g}" for v in row]
                                      for row in k], fontsize=6 if small else 9)
    style.no_ticks(axes)
    fig.suptitle("kernel convolution  G[m,n] = Σ_j Σ_k h[j,k] f[m−j, n−k]")
    style.save(fig, path)
    return shapes


def plot_pixel_usage(n: int, f: int, path) -> dict:
    """§4: windows per pixel, valid vs same padding (corners 1 vs centre f²).

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_pixel_usage(6, 3, out / 'u.png') is not None
      True
    """
    valid, same = pixel_usage(n, f, "VALID"), pixel_usage(n, f, "SAME")
    fig, axes = style.figure(1, 2, figsize=(9.5, 4.4))
    for ax, counts, title in ((axes[0], valid, f"valid: output {n - f + 1}×{n - f + 1}"),
                              (axes[1], same, f"same (p = {(f - 1) // 2}): output {n}×{n}")):
        im = ax.imshow(counts, cmap="viridis", vmin=0, vmax=f * f)
        style.annotate(ax, im, counts, fontsize=9)
        ax.set_title(title)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.colorbar(im, ax=axes, shrink=0.9, label="windows using the pixel")
    fig.suptitle(f"{n}×{n} image, {f}×{f} kernel: border pixels are used less")
    style.save(fig, path)
    return {"valid": valid, "same": same}


def plot_strides(gray: np.ndarray, path, strides=(1, 2, 3), f: int = 3) -> dict:
    """§5: one image convolved with strides 1, 2, 3; sizes from ``output_size``.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_strides(np.zeros((16, 16)), out / 's.png') is not None
      True
    """
    k = CLASSIC_KERNELS["Sobel (vertical edges)"][:, :, None, None]
    x = jnp.asarray(gray, jnp.float32)[None, :, :, None]
    sizes = {}
    fig, axes = style.figure(1, len(strides), figsize=(4 * len(strides), 4))
    for ax, s in zip(axes, strides):
        out = conv(x, jnp.asarray(k, jnp.float32), stride=s)[0, :, :, 0]
        n_out = output_size(gray.shape[0], f, stride=s)
        sizes[s] = (n_out, output_size(gray.shape[1], f, stride=s))
        assert out.shape == sizes[s]
        ax.imshow(out, cmap="gray")
        ax.set_title(f"stride {s}: ⌊({gray.shape[0]} − {f})/{s}⌋ + 1 = {n_out}")
    style.no_ticks(axes)
    style.save(fig, path)
    return sizes


def plot_volumes(photo: np.ndarray, path, seed: int = 0) -> dict:
    """§6: a 3-channel input, 3-channel kernels (one per filter), the stacked maps.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_volumes(np.zeros((16, 16, 3), np.uint8), out / 'v.png') is not None
      True
    """
    x = jnp.asarray(photo, jnp.float32)[None] / 255.0
    filters = np.stack([
        np.stack([CLASSIC_KERNELS["Sobel (vertical edges)"]] * 3, -1),
        np.stack([CLASSIC_KERNELS["Sobel (horizontal edges)"]] * 3, -1),
        np.stack([np.ones((3, 3)), np.zeros((3, 3)), -np.ones((3, 3))], -1) / 9,  # red − blue
        np.stack([CLASSIC_KERNELS["Laplacian"]] * 3, -1),
    ], -1)  # (3, 3, 3, 4): [f, f, n_c, n_f]
    maps = np.asarray(conv(x, jnp.asarray(filters, jnp.float32), padding="SAME")[0])
    # one row per input channel: the channel, then each filter's slice for it; the
    # last row: each filter's feature map, the sum over the three channels
    fig, axes = style.figure(4, 5, figsize=(12, 10), gridspec_kw={"height_ratios": [1, 1, 1, 1.6]})
    top = np.abs(filters).max(axis=(0, 1, 2))  # one colour scale per filter
    for c, (name, cmap) in enumerate(zip(("R", "G", "B"), ("Reds", "Greens", "Blues"))):
        axes[c, 0].imshow(photo[:, :, c], cmap=cmap)
        axes[c, 0].set_title(f"input channel {c} ({name})", fontsize=9)
        for j in range(4):
            k = filters[:, :, c, j]
            im = axes[c, j + 1].imshow(k, cmap="coolwarm", vmin=-top[j], vmax=top[j])
            style.annotate(axes[c, j + 1], im, k, [[f"{v:.2g}" for v in row] for row in k],
                      fontsize=8)
            axes[c, j + 1].set_title(f"filter {j}, channel {c}", fontsize=9)
    axes[3, 0].imshow(photo)
    axes[3, 0].set_title(f"input {list(photo.shape)}", fontsize=9)
    for j in range(4):
        axes[3, j + 1].imshow(maps[:, :, j], cmap="gray")
        axes[3, j + 1].set_title(f"feature map {j} = Σ over channels", fontsize=9)
    style.no_ticks(axes)
    fig.suptitle(f"[{photo.shape[0]}, {photo.shape[1]}, 3] * [3, 3, 3] × 4 filters → "
                 f"{list(maps.shape)}")
    style.save(fig, path)
    return {"maps_shape": maps.shape, "filters_shape": filters.shape}


def plot_filters_and_maps(w: np.ndarray, digit: np.ndarray, path, b=None) -> dict:
    """§7: trained first-layer kernels and their feature maps on one digit.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> w, digit = np.ones((3, 3, 1, 4)), np.zeros((8, 8))
      >>> viz.plot_filters_and_maps(w, digit, out / 'f.png') is not None
      True
    """
    w = np.asarray(w)
    n = w.shape[-1]
    x = jnp.asarray(digit, jnp.float32)[None, :, :, None]
    z = conv(x, jnp.asarray(w, jnp.float32), None if b is None else jnp.asarray(b),
             padding="SAME")
    a = np.asarray(jnp.maximum(z, 0)[0])
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = style.figure(2 * rows, cols + 1, figsize=(1.5 * (cols + 1), 3.3 * rows))
    axes = np.atleast_2d(axes)
    axes[0, 0].imshow(digit, cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=9)
    for ax in axes[1:, 0]:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        axes[2 * r, c + 1].imshow(w[:, :, 0, i], cmap="coolwarm")
        axes[2 * r, c + 1].set_title(f"kernel {i}", fontsize=8)
        axes[2 * r + 1, c + 1].imshow(a[:, :, i], cmap="magma")
    for i in range(n, rows * cols):  # a last row with fewer kernels
        r, c = divmod(i, cols)
        axes[2 * r, c + 1].axis("off")
        axes[2 * r + 1, c + 1].axis("off")
    style.no_ticks(axes)
    fig.suptitle("trained first-layer kernels W and, under each, its map "
                 "A = relu(W * x + b)")
    style.save(fig, path)
    return {"maps_shape": a.shape}


def plot_backprop(path, kernel=None, x=None) -> dict:
    """§9 and §11: the kernel next to rot180(kernel); the max-pool gradient mask.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_backprop(out / 'b.png') is not None
      True
    """
    kernel = np.arange(1.0, 10.0).reshape(3, 3) if kernel is None else kernel
    x = (np.array([[1, 3, 2, 2], [3, 0, 2, 1], [0, 1, 4, 4], [2, 1, 4, 0]], float)
         if x is None else x)
    rotated = np.asarray(rot180(jnp.asarray(kernel)[:, :, None, None])[:, :, 0, 0])
    routes = max_pool_routes(x, 2)
    fig, axes = style.figure(1, 4, figsize=(14, 4.2))
    for ax, m, title in ((axes[0], kernel, "kernel W"),
                         (axes[1], rotated, "rot180(W), for dA")):
        style.annotate(ax, ax.imshow(m, cmap="Blues"), m, fontsize=11)
        ax.set_title(title)
    tied = np.zeros(x.shape, bool)  # a maximum its 2×2 window shares with another cell
    for (r, c), v in np.ndenumerate(x):
        win = x[r - r % 2:r - r % 2 + 2, c - c % 2:c - c % 2 + 2]
        tied[r, c] = v == win.max() and (win == v).sum() > 1
    labels = [[f"{v:g}*" if t else f"{v:g}" for v, t in zip(*rows)] for rows in zip(x, tied)]
    style.annotate(axes[2], axes[2].imshow(x, cmap="Greys"), x, labels, fontsize=11)
    for r, c in zip(*np.nonzero(tied)):
        axes[2].add_patch(style.plt().Rectangle((c - 0.42, r - 0.42), 0.84, 0.84, fill=False,
                                           edgecolor="tab:red", linewidth=2))
    style.annotate(axes[3], axes[3].imshow(routes, cmap="Oranges", vmin=0,
                                      vmax=max(routes.max(), 1)), routes, fontsize=11)
    for ax in axes[2:]:
        for k in range(0, max(x.shape) + 1, 2):
            ax.axhline(k - 0.5, color="tab:blue", lw=2)
            ax.axvline(k - 0.5, color="tab:blue", lw=2)
    axes[2].set_title("input, 2×2 windows\n(* = a tied maximum)")
    axes[3].set_title("mask: each window's gradient\ngoes to its first maximum")
    style.no_ticks(axes)
    style.save(fig, path)
    return {"rotated": rotated, "routes": routes}


def plot_sharing(path, layers=((32, 3, 3, 32), (28, 1, 5, 32), (14, 32, 5, 64),
                               (8, 64, 3, 128))) -> list[dict]:
    """§8: parameters of conv layers vs dense layers of the same input/output sizes.

    Examples:
      >>> import pathlib, tempfile, numpy as np
      >>> from jcnn import viz
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> viz.plot_sharing(out / 'sh.png') is not None
      True
    """
    rows = [dict(conv_vs_dense_params(n, c, f, o), label=f"{n}×{n}×{c}\n{f}×{f}→{o}")
            for n, c, f, o in layers]
    fig, ax = style.figure(figsize=(8, 4.4))
    idx = np.arange(len(rows))
    ax.bar(idx - 0.2, [r["conv"] for r in rows], 0.4, label="conv layer")
    ax.bar(idx + 0.2, [r["dense"] for r in rows], 0.4, label="dense, same in/out sizes")
    ax.set_yscale("log")
    ax.set_ylim(top=max(r["dense"] for r in rows) * 8)  # room for the numbers on the bars
    ax.set_xticks(idx, [r["label"] for r in rows])
    ax.set_ylabel("parameters (log scale)")
    for i, r in enumerate(rows):
        ax.text(i - 0.2, r["conv"], f"{r['conv']:,}", ha="center", va="bottom", fontsize=7)
        ax.text(i + 0.2, r["dense"], f"{r['dense']:,}", ha="center", va="bottom", fontsize=7)
    ax.legend(loc="upper left", ncols=2)
    ax.set_title("sparse connections and weight sharing")
    style.save(fig, path)
    return rows
