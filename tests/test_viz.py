"""The pictures: each writes a non-empty PNG; the numbers behind them are exact."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from jcnn import _viz_style as style
from jcnn import viz


def _usage_oracle(n, f, pad, pad_high=None):
    """Windows covering each pixel, by enumerating every window position."""
    pad_high = pad if pad_high is None else pad_high
    counts = np.zeros((n, n), int)
    m = n + pad + pad_high - f + 1
    for r0, c0 in itertools.product(range(m), repeat=2):
        for dr, dc in itertools.product(range(f), repeat=2):
            r, c = r0 + dr - pad, c0 + dc - pad
            if 0 <= r < n and 0 <= c < n:
                counts[r, c] += 1
    return counts


@pytest.mark.parametrize("n,f", [(6, 3), (9, 5), (7, 4), (5, 1)])
def test_pixel_usage_counts(n, f):
    valid = viz.pixel_usage(n, f, "VALID")
    np.testing.assert_array_equal(valid, _usage_oracle(n, f, 0))
    assert valid[0, 0] == 1 and valid[n // 2, n // 2] == f * f  # the article's §4 numbers
    assert valid.sum() == (n - f + 1) ** 2 * f * f  # every window reads f² pixels
    same = viz.pixel_usage(n, f, "SAME")
    lo = (f - 1) // 2  # SAME: the odd extra padding goes on the high side
    np.testing.assert_array_equal(same, _usage_oracle(n, f, lo, f - 1 - lo))


def test_conv_vs_dense_numbers():
    r = viz.conv_vs_dense_params(32, 3, 3, 32)
    assert r["conv"] == 3 * 3 * 3 * 32 + 32 == 896
    assert r["dense"] == (32 * 32 * 3) * (32 * 32 * 32) + 32 * 32 * 32 == 100_696_064
    assert viz.conv_vs_dense_params(28, 1, 5, 6, padding="VALID")["out"] == (24, 24, 6)


def test_max_pool_routes_by_hand():
    x = np.array([[1, 3, 2, 2], [3, 0, 2, 1], [0, 1, 4, 4], [2, 1, 4, 0]], float)
    # windows: [[1,3],[3,0]] → first 3 at (0,1); [[2,2],[2,1]] → (0,2);
    # [[0,1],[2,1]] → (3,0); [[4,4],[4,0]] → (2,2)
    want = np.zeros((4, 4), int)
    for r, c in [(0, 1), (0, 2), (3, 0), (2, 2)]:
        want[r, c] = 1
    np.testing.assert_array_equal(viz.max_pool_routes(x), want)
    # overlapping windows accumulate
    np.testing.assert_array_equal(viz.max_pool_routes(np.array([[0, 5.0, 1]]).T @ np.ones((1, 3)),
                                                      2, 1).sum(), 4)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    return photo, photo.mean(-1), rng.integers(0, 17, (8, 8)).astype(float)


def _png(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return True


def _contrast(a, b):
    """WCAG contrast ratio of two sRGB colours (components in [0, 1])."""
    def lum(rgb):
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_text_color_by_hand():
    assert style.text_color((1, 1, 1)) == "black" and style.text_color((0, 0, 0)) == "white"
    assert style.text_color((1, 1, 0)) == "black"  # yellow: luminance 0.93
    assert style.text_color((0, 0, 1)) == "white"  # blue: 0.07
    assert style.text_color((0.5, 0.5, 0.5)) == "black"  # 0.21: black 5.3:1, white 3.9:1
    assert style.text_color((0.4, 0.4, 0.4)) == "white"  # 0.13: white 5.9:1, black 3.7:1


@pytest.fixture
def figures(monkeypatch):
    """Every figure a plot function saves, with its path, checked before it closes."""
    import matplotlib.colors as mcolors

    seen = []
    save = style.save

    def checked(fig, path):
        seen.append(Path(path).name)
        fig.canvas.draw()
        _check_cell_text(fig, mcolors)
        _check_labels_apart(fig)
        return save(fig, path)

    monkeypatch.setattr(style, "save", checked)
    return seen


def _check_cell_text(fig, mcolors):
    """Numbers written on heat-map cells are readable: WCAG contrast at least 4.5."""
    for ax in fig.axes:
        if len(ax.images) != 1:
            continue
        im = ax.images[0]
        data = np.asarray(im.get_array())
        for t in ax.texts:
            x, y = t.get_position()
            cell = im.to_rgba(data[int(round(y)), int(round(x))])
            ratio = _contrast(mcolors.to_rgb(t.get_color()), cell)
            assert ratio >= 4.5, (ax.get_title(), t.get_text(), t.get_color(), cell, ratio)


def _check_labels_apart(fig):
    """Titles, axis labels and the figure title overlap neither each other nor another
    panel's plotting area."""
    r = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    gap = 2  # pixels each side: text that merely touches its neighbour fails too
    boxes = [(t, t.get_window_extent(r).padded(gap)) for t in texts
             if t.get_text() and t.get_visible()]
    for i, (t, box) in enumerate(boxes):
        for u, other in boxes[i + 1:]:
            assert not box.overlaps(other), (t.get_text(), u.get_text())
        for ax in fig.axes:
            if t in (ax.title, ax.xaxis.label, ax.yaxis.label) or not ax.get_visible():
                continue
            assert not box.overlaps(ax.get_window_extent(r)), (t.get_text(), ax.get_title())


def test_every_picture_writes_a_png(images, tmp_path, figures):
    photo, gray, digit = images
    assert viz.plot_image_as_tensor(photo, digit, tmp_path / "1.png")["photo_shape"] == (24, 24, 3)
    shapes = viz.plot_kernel_gallery(gray, tmp_path / "2.png")
    assert all(s == (24, 24) for s in shapes.values()) and len(shapes) == 6
    usage = viz.plot_pixel_usage(6, 3, tmp_path / "3.png")
    assert usage["valid"][0, 0] == 1 and usage["same"][0, 0] == 4
    sizes = viz.plot_strides(gray, tmp_path / "4.png")
    assert sizes == {1: (22, 22), 2: (11, 11), 3: (8, 8)}  # ⌊(24 − 3)/s⌋ + 1
    assert viz.plot_volumes(photo, tmp_path / "5.png")["maps_shape"] == (24, 24, 4)
    w = np.random.default_rng(1).standard_normal((3, 3, 1, 5))
    assert viz.plot_filters_and_maps(w, digit, tmp_path / "6.png")["maps_shape"] == (8, 8, 5)
    back = viz.plot_backprop(tmp_path / "7.png")
    np.testing.assert_array_equal(back["rotated"], np.arange(9.0, 0, -1).reshape(3, 3))
    rows = viz.plot_sharing(tmp_path / "8.png")
    assert rows[0]["conv"] == 896
    hist = {"train_loss": [2, 1], "test_loss": [2.1, 1.2], "train_accuracy": [0.3, 0.6],
            "test_accuracy": [0.3, 0.5]}
    assert viz.plot_training_curves(hist, tmp_path / "9.png")["epochs"] == 2
    for i in range(1, 10):
        assert _png(tmp_path / f"{i}.png")
    assert figures == [f"{i}.png" for i in range(1, 10)]  # each checked by the fixture


def test_training_curves_draw_any_metric_and_no_test_split(tmp_path):
    """A regression history (no accuracy) and one without a test split both draw."""
    from jcnn.training import History

    reg = History({"train_loss": [0.3, 0.2], "test_loss": [0.4, 0.3], "train_mae": [0.5, 0.4],
                   "test_mae": [0.6, 0.5], "seconds": [1.0, 1.0]})
    assert viz.plot_training_curves(reg, tmp_path / "r.png") == {"epochs": 2,
                                                                 "panels": ["loss", "mae"]}
    alone = {"train_loss": [1.0, 0.5, 0.2]}
    assert viz.plot_training_curves(alone, tmp_path / "a.png")["panels"] == ["loss"]
    assert _png(tmp_path / "r.png") and _png(tmp_path / "a.png")
    with pytest.raises(ValueError, match="plot_training_curves: the history has no"):
        viz.plot_training_curves({"loss": [1.0]}, tmp_path / "x.png")


def test_the_picture_checks_can_fail():
    """Red digits on a dark cell, white on yellow and two titles on top of each other
    are caught (the old §9 and §4 pictures)."""
    import matplotlib.colors as mcolors

    plt = style.plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(3, 2))
    for cmap, value, color in (("Greys", 3, "red"), ("viridis", 9, "white")):
        a.clear()
        a.imshow(np.array([[value, 0], [0, 0]]), cmap=cmap, vmin=0, vmax=max(value, 4))
        a.text(0, 0, str(value), color=color)
        with pytest.raises(AssertionError):
            _check_cell_text(fig, mcolors)
        a.texts[0].set_color(style.text_color(a.images[0].to_rgba(value)))
        _check_cell_text(fig, mcolors)
    a.set_title("a long title that runs into the next one")
    b.set_title("and the next one")
    fig.canvas.draw()
    with pytest.raises(AssertionError):
        _check_labels_apart(fig)
    plt.close(fig)


def test_visualize_example_writes_nine_pictures(tmp_path, figures):
    import visualize  # examples/ is on the test path (pyproject)

    written = visualize.main(["--out", str(tmp_path), "--epochs", "1"])
    assert len(written) == 9 and sorted(figures) == sorted(written)  # each one checked
    for name in written:
        assert _png(tmp_path / name)


def test_benchmark_suite_runs_on_tiny_shapes(tmp_path):
    """Keep `python -m benchmarks` working (timings are never asserted)."""
    from benchmarks.__main__ import main

    conv_rows, pool_rows, train_row = main(["--quick", "--repeats", "1",
                                            "--out", str(tmp_path / "B.md")])
    assert len(conv_rows) == 3 and len(pool_rows) == 4
    text = (tmp_path / "B.md").read_text()
    assert "Geometric mean jcnn/lax" in text and "digits train step" in text


def test_confusion_matrix_counts_against_a_loop():
    rng = np.random.default_rng(4)
    labels, predicted = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    cm = viz.confusion_matrix(labels, predicted, 4)
    loop = np.zeros((4, 4), int)
    for t, p in zip(labels, predicted):
        loop[t, p] += 1
    np.testing.assert_array_equal(cm, loop)
    assert cm.sum() == 50 and np.trace(cm) == np.sum(labels == predicted)


def test_confusion_matrix_picture_and_errors(tmp_path, figures):
    out = viz.plot_confusion_matrix(np.array([[5, 0, 0], [1, 3, 1], [0, 0, 4]]),
                                    tmp_path / "cm.png", ["x", "y", "z"])
    assert out == {"accuracy": 12 / 14, "worst_class": "y"}  # recalls 1, 3/5, 1
    assert _png(tmp_path / "cm.png")
    with pytest.raises(ValueError, match=r"confusion_matrix: labels must lie in \[0, 3\)"):
        viz.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="equal-length vectors"):
        viz.confusion_matrix([0, 1], [0], 3)
