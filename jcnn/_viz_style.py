"""How jcnn's pictures are drawn: matplotlib (Agg, headless) with constrained
layouts, and numbers on heat-map cells in black or white, whichever contrasts
more with the cell (WCAG relative luminance).  Used by :mod:`jcnn.viz`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = []


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(rows=1, cols=1, **kw):
    """``plt.subplots`` with constrained layout (titles, colour bars, labels kept apart)."""
    return plt().subplots(rows, cols, layout="constrained", **kw)


def save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt().close(fig)
    return path


def luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour with components in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_color(rgb) -> str:
    """Black or white, whichever contrasts more with a cell of colour ``rgb``
    (contrast ``(L1 + 0.05) / (L2 + 0.05)``: black wins above luminance ~0.18)."""
    return "black" if (luminance(rgb) + 0.05) ** 2 > 1.05 * 0.05 else "white"


def annotate(ax, image, values, labels=None, **text):
    """Write each cell's value (or ``labels``) on ``image``, an ``imshow`` of
    ``values``, in the colour that contrasts most with the cell under it."""
    values = np.asarray(values)
    for (r, c), v in np.ndenumerate(values):
        label = f"{v:g}" if labels is None else labels[r][c]
        ax.text(c, r, label, ha="center", va="center",
                color=text_color(image.cmap(image.norm(v))), **text)


def no_ticks(axes):
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
